"""Fleet orders in the agent loop: the control plane's answer to an attack spread over a
group of nodes (`agent_api.FleetOrders`), turned into this node's own rules.

`FleetInbox` carries the newest answer from the fleet watcher's thread
(`ftagent.report.fleet_watch`) to the loop, which takes it every window (not once a
second: the delay from the control plane's decision to the rule in force counts).
`FleetRules` is the one owner of the fleet orders' state:

- a new order (or one whose vectors changed): each vector becomes a classifier `Vector`
  with this node's own current rate of the vector's metric, planned exactly like an
  incident of the node (`planning.plan_rules`: the sampled packets, the protection, the
  rate limits and the socket guard, so the node's real users keep being served), and
  installed through the mitigator as the fleet incident's rules, with a kernel expiry of
  now + the order's TTL;
- every answer listing the order renews that expiry (the mitigator's `renew`);
- an answer no longer listing it removes its rules at once (rules the node's own incident
  also holds stay: the mitigator keeps a rule while any owner does);
- an order not renewed within its TTL is forgotten (the kernel stopped applying its rules
  already: fail open when the control plane is gone).

Mitigation mode off: nothing is planned; dry_run: planned and reported, not installed
(the mitigator records it). A mode change re-plans every order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ftagent.config import MitigationConfig
from ftagent.datapath import Rule, RuleSpec
from ftagent.events import RuleChange
from ftagent.evidence.samples import PacketInfo
from ftagent.mitigate.guard import NO_GUARD, SocketGuard
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.planning import Plan, plan_rules, vector_metric
from ftagent.mitigate.protection import Protected
from ftagent.respond.incident import rule_figure
from ftcontract import agent_api
from ftcontract.classify import Classification, Vector
from ftcontract.vocabulary import MitigationMode

log = logging.getLogger("ftagent.fleet")

# What one metric point may carry (agent_api.MetricPoint.fleet_rules, FleetRuleReport.rules).
MAX_REPORTED_ORDERS = 16
MAX_REPORTED_RULES = 64


@dataclass(frozen=True, slots=True)
class FleetAnswer:
    """One answer of the control plane's /fleet, as the watcher received it."""

    orders: agent_api.FleetOrders
    received_at: float  # time.monotonic()


class FleetInbox:
    """The newest answer not yet taken: written by the watcher's thread, taken by the loop.

    Every answer renews the orders it lists, so an answer is never lost to a newer one:
    the newer one lists everything in force."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answer: FleetAnswer | None = None

    def put(self, orders: agent_api.FleetOrders) -> None:
        with self._lock:
            self._answer = FleetAnswer(orders, time.monotonic())

    def take(self) -> FleetAnswer | None:
        with self._lock:
            answer, self._answer = self._answer, None
        return answer


def order_vectors(
    order: agent_api.FleetOrder, rates: Mapping[str, float]
) -> tuple[Vector, ...]:
    """The order's vectors as the classifier's, each with this node's current rate of the
    vector's metric (what rate limits and newcomer budgets are sized on)."""
    out = []
    for fv in order.vectors:
        named = Vector(fv.family, fv.group, fv.share, 0.0, fv.amp_port)
        pps = float(rates.get(vector_metric(named), 0.0))
        out.append(Vector(fv.family, fv.group, fv.share, round(pps, 1), fv.amp_port))
    return tuple(out)


def plan_order(
    order: agent_api.FleetOrder,
    rates: Mapping[str, float],
    packets: list[PacketInfo],
    cfg: MitigationConfig,
    protected: Protected,
    rate_limit: Callable[[str], int],
    guard: SocketGuard = NO_GUARD,
) -> Plan:
    """The node's rules for one fleet order: exactly the planning of its own incidents."""
    cls = Classification(order.family, "", order_vectors(order, rates))
    return plan_rules(cls, packets, cfg, protected, rate_limit, guard)


@dataclass(slots=True)
class OrderState:
    order: agent_api.FleetOrder
    expires_at: float  # mitigator clock: forgotten then unless renewed
    mode: MitigationMode  # the mitigation mode it was planned in
    received_at: float  # Unix time first received
    in_force_since: float | None = None  # Unix time a rule of it was first in the kernel
    notes: list[str] = field(default_factory=list)


class FleetRules:
    def __init__(
        self,
        mitigator: Mitigator,
        cfg: MitigationConfig,
        protected: Protected,
        rate_limit: Callable[[str], int],
        guard: SocketGuard,
        lock: threading.RLock,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.mitigator = mitigator
        self.cfg = cfg
        self.protected = protected
        self.rate_limit = rate_limit
        self.guard = guard
        self.lock = lock  # the datapath lock
        self.wall = wall
        self.orders: dict[str, OrderState] = {}

    @property
    def held(self) -> bool:
        """A fleet order is held (in force, or planned in dry_run): the node is under a
        fleet attack, so its baseline learns nothing."""
        return bool(self.orders)

    def take(
        self,
        answer: FleetAnswer | None,
        rates: Callable[[], Mapping[str, float]],
        packets: Callable[[], list[PacketInfo]],
    ) -> list[RuleChange]:
        """One window: apply a new answer (plan, renew, remove), forget orders not renewed
        in time, re-plan after a mitigation mode change. `rates` and `packets` (the node's
        current rates by metric, its recent sampled packets) are read only to plan."""
        changes: list[RuleChange] = []
        now = self.mitigator.clock()
        if answer is not None:
            listed = {o.incident_uuid: o for o in answer.orders.orders}
            for uuid in [u for u in self.orders if u not in listed]:
                changes += self._end(uuid, "fleet order withdrawn")
            for uuid, order in listed.items():
                st = self.orders.get(uuid)
                if st is None or st.order.vectors != order.vectors:
                    changes += self._plan(order, rates(), packets())
                else:
                    st.order = order
                    st.expires_at = now + order.ttl_s
                    with self.lock:
                        self.mitigator.renew(uuid, order.ttl_s)
        for uuid, st in list(self.orders.items()):
            if st.expires_at <= now:
                changes += self._end(uuid, "fleet order not renewed in time")
            elif st.mode != self.mitigator.mode:
                changes += self._plan(st.order, rates(), packets())
        return changes

    def _plan(
        self, order: agent_api.FleetOrder, rates: Mapping[str, float], packets: list[PacketInfo]
    ) -> list[RuleChange]:
        uuid = order.incident_uuid
        m = self.mitigator
        st = self.orders.get(uuid)
        fresh = st is None
        if st is None:
            st = OrderState(order, 0.0, m.mode, self.wall())
            self.orders[uuid] = st
        st.order, st.mode = order, m.mode
        st.expires_at = m.clock() + order.ttl_s
        changes: list[RuleChange] = []
        if m.mode == "off":
            st.notes = ["mitigation off: no rules"]
            with self.lock:
                changes += m.drop(uuid, "mitigation off")
        else:
            plan = plan_order(
                order, rates, packets, self.cfg, self.protected, self.rate_limit, self.guard
            )
            st.notes = plan.notes + [f"refused {r.target}: {r.reason}" for r in plan.refused]
            with self.lock:
                reason = f"fleet order {order.family} ({order.group or 'fleet'})"
                changes += m.apply(plan.rules, uuid, reason, fleet_ttl_s=order.ttl_s)
                # A re-plan (new vectors): rules of the old plan that the new one lacks go.
                stale = [s for s in m.rules_of(uuid) if s not in plan.rules]
                changes += m.drop(uuid, "fleet order re-planned", only=stale)
            if m.mode == "on" and m.rules_of(uuid) and st.in_force_since is None:
                st.in_force_since = self.wall()
        if fresh:
            log.info(
                "fleet order %s in force: %s on %s, %d rule(s) (%s)",
                uuid,
                order.family,
                order.group or "the fleet",
                len(m.rules_of(uuid)),
                m.mode,
                extra={
                    "event": "fleet_order_started",
                    "incident_uuid": uuid,
                    "family": order.family,
                    "group": order.group,
                    "rules": [s.describe() for s in m.rules_of(uuid)],
                    "notes": st.notes,
                },
            )
        return changes

    def _end(self, uuid: str, reason: str) -> list[RuleChange]:
        st = self.orders.pop(uuid)
        with self.lock:
            changes = self.mitigator.drop(uuid, reason)
        log.info(
            "fleet order %s ended: %s",
            uuid,
            reason,
            extra={
                "event": "fleet_order_ended",
                "incident_uuid": uuid,
                "family": st.order.family,
                "reason": reason,
            },
        )
        return changes

    def end_all(self, reason: str) -> list[RuleChange]:
        changes: list[RuleChange] = []
        for uuid in list(self.orders):
            changes += self._end(uuid, reason)
        return changes

    # ---- what the node reports and shows ----------------------------------------------

    def rules_of(self, uuid: str) -> list[RuleSpec]:
        return self.mitigator.rules_of(uuid)

    def reports(self, kernel: Mapping[RuleSpec, Rule]) -> list[agent_api.FleetRuleReport]:
        """Per order with rules: each rule with what it dropped and spared in the kernel
        since it was installed (cumulative), and when the order was first in force."""
        out = []
        for uuid, st in list(self.orders.items())[:MAX_REPORTED_ORDERS]:
            specs = self.rules_of(uuid)[:MAX_REPORTED_RULES]
            if not specs:
                continue
            figures = []
            for s in specs:
                r = kernel.get(s)
                dropped, spared = (r.dropped_packets, r.spared_packets) if r else (0, 0)
                figures.append(rule_figure(s, st.order.ttl_s, dropped, spared))
            out.append(
                agent_api.FleetRuleReport(
                    incident_uuid=uuid, rules=figures, in_force_since=st.in_force_since
                )
            )
        return out

    def expires_in(self, uuid: str) -> float:
        return max(0.0, self.orders[uuid].expires_at - self.mitigator.clock())

"""Automatic escalation: a node's mitigation policy applied to what its agent reports.

For a node whose `mitigation_policy` is not "local" and that has an active incident, the
trigger holds while
  - uplink_share:   the node receives at least `escalate_uplink_share` x its declared
                    `uplink_mbps` (the metric point's bps: the traffic that fills the
                    uplink, measured before XDP drops it), or
  - link_saturated: the agent says the link is full (its rx losses rise while XDP cannot
                    bring the received rate down).
It is checked on every metrics post of the node and on every incident report
(opened/updated; with the node's last reported rate). While it holds:
  - FlowSpec is announced (and renewed once less than half its TTL is left);
  - flowspec_then_rtbh: once FlowSpec is in force and the trigger has held for
    `rtbh_after_s` without a break, RTBH is announced as well.
An escalation that was refused is tried again no sooner than RETRY_REFUSED_S later (each
refusal is recorded on the incident). The time the trigger has held is kept in memory:
after an ftcontrol restart it starts again.

Withdrawal: once an incident is no longer active (resolved, false_positive), its
announcements are withdrawn `withdraw_hold_down_s` after it ended; the sweep that does
it reads the store, so a restart in between changes nothing. TTL expiry is the engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiosqlite

from control.bgp.announcements import FlowSpecRule, Rtbh
from control.bgp.engine import BgpEngine
from control.bgp.ledger import LiveAnnouncement, Trigger
from control.bgp.schemas import AnnouncementKind
from control.bgp.service import IncidentTarget, Upstream
from control.core.errors import DomainError
from control.incidents.event_bus import IncidentEvent, IncidentEvents
from ftcontract.agent_api import MetricPoint

log = logging.getLogger("ftcontrol.bgp")

RETRY_REFUSED_S = 30.0
SWEEP_MAX_WAIT_S = 5.0

_DUE_FOR_WITHDRAWAL = """
SELECT a.id, coalesce(i.ended_at, i.updated_at) + :hold AS due
FROM bgp_announcements a JOIN incidents i ON i.id = a.incident_id
WHERE a.withdrawn_at IS NULL AND i.status != 'active'
ORDER BY due
"""


class AutoEscalation:
    def __init__(
        self,
        upstream: Upstream,
        engine: BgpEngine,
        db: aiosqlite.Connection,
        events: IncidentEvents,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstream = upstream
        self.engine = engine
        self.config = engine.config
        self.db = db
        self.clock = clock
        self._since: dict[int, float] = {}  # incident id -> the trigger holds since
        self._refused: dict[tuple[int, AnnouncementKind], float] = {}
        self._saturated: dict[int, bool] = {}  # node id -> its last point's verdict
        self._node_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        events.subscribe(self._on_event)

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="bgp-hold-down")

    async def stop(self) -> None:
        tasks = [t for t in (self._sweeper, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- inputs ------------------------------------------------------------------------

    def on_points(self, node_id: int, points: list[MetricPoint]) -> None:
        """A metrics post was stored: check the node with its newest point (in the
        background: the agent's reply does not wait for BGP)."""
        if not points:
            return
        latest = max(points, key=lambda p: p.ts)
        self._saturated[node_id] = latest.link_saturated
        if not (latest.attack or latest.link_saturated):
            # No incident on the node and a link with room: nothing to escalate, and no
            # database read per quiet post (every node posts once a second).
            return
        self._spawn(self.check(node_id, latest.bps, latest.link_saturated))

    async def _on_event(self, event: IncidentEvent) -> None:
        if event.kind in ("resolved", "false_positive"):
            self._wake.set()
        elif event.kind in ("opened", "updated", "escalated"):
            self._spawn(self._check_node_of(event))

    async def _check_node_of(self, event: IncidentEvent) -> None:
        if event.incident.node is None:
            return  # a fleet incident: its upstream rule is the fleet engine's (control.fleet)
        rows = list(
            await self.db.execute_fetchall(
                "SELECT id, last_bps FROM nodes WHERE workspace_id = ? AND uuid = ?",
                (event.workspace_id, event.incident.node.uuid),
            )
        )
        if rows:
            node_id = int(rows[0]["id"])
            bps = float(rows[0]["last_bps"] or 0.0)
            if event.kind == "opened":
                # At detection the node's last one-second point is up to a second old; the
                # agent's opening report already has the attack's windows. Deciding on
                # them announces ~1 s sooner. Later checks use the newest point only, so a
                # peak from the past never keeps a trigger (or its RTBH timer) alive.
                bps = max(bps, event.incident.peak_bps, event.incident.peak_burst_bps)
            await self.check(node_id, bps, self._saturated.get(node_id, False))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the policy --------------------------------------------------------------------

    async def check(self, node_id: int, bps: float, saturated: bool) -> None:
        lock = self._node_locks.setdefault(node_id, asyncio.Lock())
        try:
            async with lock:
                await self._check_locked(node_id, bps, saturated)
        except Exception:
            log.exception("automatic escalation of node %d failed", node_id)

    async def _check_locked(self, node_id: int, bps: float, saturated: bool) -> None:
        rows = list(
            await self.db.execute_fetchall(
                "SELECT mitigation_policy, uplink_mbps FROM nodes "
                "WHERE id = ? AND deleted_at IS NULL",
                (node_id,),
            )
        )
        if not rows or rows[0]["mitigation_policy"] == "local":
            return
        policy, uplink_mbps = rows[0]["mitigation_policy"], rows[0]["uplink_mbps"]
        target = await self.upstream.active_target(node_id)
        if target is None:
            return
        trigger = self._trigger(bps, saturated, uplink_mbps)
        now = self.clock()
        if trigger is None:
            self._since.pop(target.incident_id, None)
            return
        since = self._since.setdefault(target.incident_id, now)
        live = self.upstream.live_of(target.incident_id)
        flows = [a for a in live if isinstance(a.announcement, FlowSpecRule)]
        if self._due(flows, now):
            await self._escalate(target, "flowspec", trigger, now)
            flows = [
                a
                for a in self.upstream.live_of(target.incident_id)
                if isinstance(a.announcement, FlowSpecRule)
            ]
        if policy != "flowspec_then_rtbh" or not flows or now - since < self.config.rtbh_after_s:
            return
        blackholes = [a for a in live if isinstance(a.announcement, Rtbh)]
        if self._due(blackholes, now):
            await self._escalate(target, "rtbh", trigger, now)

    def _trigger(self, bps: float, saturated: bool, uplink_mbps: float | None) -> Trigger | None:
        if saturated:
            return "link_saturated"
        if uplink_mbps is not None and bps >= self.config.escalate_uplink_share * uplink_mbps * 1e6:
            return "uplink_share"
        return None

    def _due(self, live: list[LiveAnnouncement], now: float) -> bool:
        """Nothing in force yet, or renewal time (less than half the TTL left)."""
        if not live:
            return True
        return min(a.expires_at for a in live) - now < self.config.default_ttl_s / 2

    async def _escalate(
        self, target: IncidentTarget, action: AnnouncementKind, trigger: Trigger, now: float
    ) -> None:
        key = (target.incident_id, action)
        refused_at = self._refused.get(key)
        if refused_at is not None and now - refused_at < RETRY_REFUSED_S:
            return
        try:
            await self.upstream.escalate_target(target, action, trigger)
        except DomainError as exc:
            self._refused[key] = now
            log.info("automatic %s for incident %s refused: %s", action, target.incident_uuid, exc)
        else:
            self._refused.pop(key, None)
            log.info("automatic %s for incident %s (%s)", action, target.incident_uuid, trigger)

    # ---- withdrawal after the hold-down ------------------------------------------------

    async def sweep(self) -> float | None:
        """Withdraw what is due; returns when the next one is due (None: nothing waits)."""
        rows = await self.db.execute_fetchall(
            _DUE_FOR_WITHDRAWAL, {"hold": self.config.withdraw_hold_down_s}
        )
        now = self.clock()
        for row in rows:
            if row["due"] > now:
                return float(row["due"])
            await self.upstream.withdraw_id(self.engine, int(row["id"]), "resolved")
        return None

    async def _sweep_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self.sweep()
            except Exception:
                log.exception("withdrawing ended incidents' announcements failed")
                due = None
            wait = SWEEP_MAX_WAIT_S if due is None else min(due - self.clock(), SWEEP_MAX_WAIT_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.05)):
                    await self._wake.wait()

"""Fleet orders in the agent: planned like the node's own incidents (socket-aware, sized
on the node's own rate), installed in the real kernel rule maps with the order's TTL,
renewed by every answer listing the order, removed when no longer listed or not renewed
in time; a rule the node's own incident also holds survives the end of either owner;
mitigation off plans nothing, dry_run plans without installing; the reports."""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

import msgspec
import pytest

from ftagent.config import MitigationConfig, decode
from ftagent.datapath import RuleSpec
from ftagent.evidence.samples import PacketInfo
from ftagent.mitigate.guard import NO_GUARD, SocketGuard
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.protection import Protection
from ftagent.orders.fleet import FleetAnswer, FleetInbox, FleetRules, order_vectors, plan_order
from ftcontract import agent_api
from tests.unit.agent.packets import udp

pytestmark = [pytest.mark.kernel]

INC = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
INC2 = "6a1d2e3f-4c5b-4d6e-9f70-8b9c0d1e2f3a"
NODE_INC = "7b2e3f40-5d6c-4e7f-a081-9c0d1e2f3a4b"
CFG = decode("[mitigation]\nrule_ttl_s = 300\nholddown_s = 30\n").mitigation
GUARD = SocketGuard(True, "on", lambda port: port == 5353)

DNS_SIG = RuleSpec("signature", proto=17, src_port=53, spare="connected")


def order(
    uuid: str = INC,
    ttl: float = 60.0,
    vectors: list[agent_api.FleetVector] | None = None,
    family: str = "dns_amplification",
) -> agent_api.FleetOrder:
    return agent_api.FleetOrder(
        incident_uuid=uuid,
        family=family,  # type: ignore[arg-type]
        vectors=vectors
        or [agent_api.FleetVector(family="dns_amplification", group="udp", amp_port=53)],
        ttl_s=ttl,
        group="203.0.113.0/24",
    )


def answer(*orders: agent_api.FleetOrder, version: int = 1) -> FleetAnswer:
    return FleetAnswer(agent_api.FleetOrders(version=version, orders=list(orders)), 0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, maps: Any, cfg: MitigationConfig = CFG) -> None:
        self.maps = maps
        self.clock = Clock()
        self.protection = Protection([], [], [], [])
        self.mitigator = Mitigator(maps, cfg, self.protection.protected, clock=self.clock)
        self.fleet = FleetRules(
            self.mitigator,
            cfg,
            self.protection.protected,
            lambda metric: 1000,
            GUARD,
            threading.RLock(),
            wall=lambda: 1_765_150_000.0,
        )
        self.rates: dict[str, float] = {"amp_53_pps": 900.0, "udp_pps": 950.0}
        self.packets: list[PacketInfo] = []

    def take(self, a: FleetAnswer | None) -> list[Any]:
        return self.fleet.take(a, lambda: self.rates, lambda: self.packets)

    def kernel(self) -> dict[RuleSpec, Any]:
        return {r.spec: r for r in self.maps.list_rules()}


def left_s(rule: Any) -> float:
    return float((rule.expires_ns - time.monotonic_ns()) / 1e9)


# ---- planning (no kernel) -------------------------------------------------------------


def test_vectors_carry_the_node_s_own_rate_of_their_metric() -> None:
    o = order(
        vectors=[
            agent_api.FleetVector(family="dns_amplification", group="udp", share=0.7, amp_port=53),
            agent_api.FleetVector(family="syn_flood", group="tcp", share=0.3),
        ],
        family="multi_vector",
    )
    rates = {"amp_53_pps": 912.34, "syn_pps": 410.0, "udp_pps": 5000.0}
    v1, v2 = order_vectors(o, rates)
    assert (v1.family, v1.share, v1.pps, v1.amp_port) == ("dns_amplification", 0.7, 912.3, 53)
    assert (v2.family, v2.group, v2.pps, v2.amp_port) == ("syn_flood", "tcp", 410.0, None)


def test_an_order_is_planned_like_an_incident_of_the_node() -> None:
    """Socket-aware: DNS answers to the node's own queries pass; a UDP flood on a port with
    a real service passes known sources, newcomers share a budget sized on the node's
    rate (0.5 % of 40 kpps = 200 pps)."""
    plan = plan_order(order(), {"amp_53_pps": 900.0}, [], CFG, Protection([], [], [], []).protected,
                      lambda m: 1000, GUARD)  # fmt: skip
    assert plan.rules == [DNS_SIG]
    service = order(
        vectors=[agent_api.FleetVector(family="udp_flood", group="udp")], family="udp_flood"
    )
    packets = [udp(f"198.51.100.{i % 250}", 40000 + i, 5353) for i in range(60)]
    plan = plan_order(service, {"udp_pps": 40_000.0}, packets, CFG,
                      Protection([], [], [], []).protected, lambda m: 1000, GUARD)  # fmt: skip
    assert plan.rules == [
        RuleSpec("signature", proto=17, dst_port=5353, spare="connected", spare_known=True,
                 rate_pps=200)
    ]  # fmt: skip
    # Without the socket guard: today's plain rules (DNS rate-limited, the node uses it).
    plan = plan_order(order(), {"amp_53_pps": 900.0}, [], CFG, Protection([], [], [], []).protected,
                      lambda m: 1234, NO_GUARD)  # fmt: skip
    assert plan.rules == [RuleSpec("signature", proto=17, src_port=53, rate_pps=1234)]


def test_few_sources_become_source_rules_but_never_protected_ones() -> None:
    flood = order(
        vectors=[agent_api.FleetVector(family="udp_flood", group="udp")], family="udp_flood"
    )
    packets = [udp("198.51.100.7", 1000 + i, 9) for i in range(30)]
    packets += [udp("192.0.2.1", 1000 + i, 9) for i in range(30)]
    protection = Protection([], [], [], [ipaddress.ip_network("192.0.2.0/24")])
    plan = plan_order(flood, {"udp_pps": 5000.0}, packets, CFG, protection.protected,
                      lambda m: 1000, GUARD)  # fmt: skip
    assert [str(r.network) for r in plan.rules] == ["198.51.100.7/32"]
    assert [(r.target, r.reason) for r in plan.refused] == [("192.0.2.1/32", "management prefix")]


def test_the_inbox_keeps_the_newest_answer_until_taken() -> None:
    inbox = FleetInbox()
    assert inbox.take() is None
    inbox.put(agent_api.FleetOrders(version=1))
    inbox.put(agent_api.FleetOrders(version=2, orders=[order()]))
    got = inbox.take()
    assert got is not None and got.orders.version == 2 and inbox.take() is None


# ---- in the kernel's rule maps ---------------------------------------------------------


def test_installed_with_the_order_ttl_renewed_by_each_answer_removed_when_unlisted(
    clean_maps: Any,
) -> None:
    s = Setup(clean_maps)
    changes = s.take(answer(order(ttl=60.0)))
    assert [(c.action, c.incident_uuid, c.ttl_s) for c in changes] == [("added", INC, 60.0)]
    rule = s.kernel()[DNS_SIG]
    assert 58.0 < left_s(rule) <= 60.0  # kernel expiry now + ttl_s, not rule_ttl_s (300)
    assert s.fleet.held and s.fleet.orders[INC].in_force_since == 1_765_150_000.0
    # Windows without an answer change nothing; the mitigator's tick does not renew it.
    s.clock.now += 40.0
    assert s.take(None) == [] and s.mitigator.tick() == []
    assert s.kernel()[DNS_SIG].expires_ns == rule.expires_ns
    # An answer listing it again renews it: quietly (no rule change), to now + ttl.
    time.sleep(0.05)
    assert s.take(answer(order(ttl=60.0), version=2)) == []
    assert s.kernel()[DNS_SIG].expires_ns > rule.expires_ns
    assert 58.0 < left_s(s.kernel()[DNS_SIG]) <= 60.0
    # Not listed any more: removed at once.
    changes = s.take(answer(version=3))
    assert [(c.action, c.incident_uuid) for c in changes] == [("removed", INC)]
    assert s.kernel() == {} and not s.fleet.held


def test_an_order_not_renewed_in_time_is_forgotten(clean_maps: Any) -> None:
    s = Setup(clean_maps)
    s.take(answer(order(ttl=30.0)))
    s.clock.now += 29.0
    assert s.take(None) == [] and DNS_SIG in s.kernel()
    s.clock.now += 1.5
    changes = s.take(None)
    assert [(c.action, c.reason) for c in changes] == [
        ("removed", "fleet order not renewed in time")
    ]
    assert s.kernel() == {} and not s.fleet.held


def test_new_vectors_re_plan_and_keep_the_rules_still_wanted(clean_maps: Any) -> None:
    s = Setup(clean_maps)
    s.take(answer(order()))
    dns = s.kernel()[DNS_SIG]
    syn = agent_api.FleetVector(family="syn_flood", group="tcp", share=0.4)
    wider = order(vectors=[*order().vectors, syn], family="multi_vector")
    s.take(answer(wider, version=2))
    syn_rule = RuleSpec("signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12,
                        spare="sockets")  # fmt: skip
    assert set(s.kernel()) == {DNS_SIG, syn_rule}
    assert s.kernel()[DNS_SIG].expires_ns >= dns.expires_ns  # the same rule, not re-made
    s.take(answer(order(vectors=[syn], family="syn_flood"), version=3))
    assert set(s.kernel()) == {syn_rule}


def test_a_rule_shared_with_the_node_s_incident_survives_the_end_of_either(
    clean_maps: Any,
) -> None:
    s = Setup(clean_maps)
    m = s.mitigator
    # The node's own incident planned the same rule (rule_ttl_s 300), then the order came.
    m.apply([DNS_SIG], NODE_INC, "confirmed dns_amplification")
    s.take(answer(order(ttl=60.0)))
    assert m.rules_of(NODE_INC) == [DNS_SIG] == s.fleet.rules_of(INC)
    assert left_s(s.kernel()[DNS_SIG]) > 290.0  # never shortened under the incident
    assert m.fleet_owned() == {DNS_SIG: [INC]}
    # The fleet order ends: the incident still holds the rule.
    s.take(answer(version=2))
    assert DNS_SIG in s.kernel() and m.rules_of(NODE_INC) == [DNS_SIG]
    assert m.fleet_owned() == {}
    # The other way round: the incident resolves and its hold-down passes; the order keeps it.
    s.take(answer(order(ttl=60.0), version=3))
    m.release(NODE_INC)
    s.clock.now += 31.0
    assert m.tick() == []
    assert m.rules_of(NODE_INC) == [] and m.rules_of(INC) == [DNS_SIG]
    # ... and its kernel expiry is brought back to what the order needs (fail open in time).
    assert left_s(s.kernel()[DNS_SIG]) < 60.0
    s.take(answer(version=4))
    assert s.kernel() == {}


def test_two_orders_sharing_a_rule(clean_maps: Any) -> None:
    s = Setup(clean_maps)
    s.take(answer(order(INC), order(INC2)))
    assert sorted(s.mitigator.fleet_owned()[DNS_SIG]) == sorted([INC, INC2])
    s.take(answer(order(INC2), version=2))
    assert DNS_SIG in s.kernel()
    s.take(answer(version=3))
    assert s.kernel() == {}


def test_mitigation_off_plans_nothing_and_dry_run_plans_without_installing(
    clean_maps: Any,
) -> None:
    s = Setup(clean_maps, msgspec.structs.replace(CFG, mode="off"))
    assert s.take(answer(order())) == []
    assert s.kernel() == {} and s.fleet.rules_of(INC) == []
    assert s.fleet.held  # the node is still under a fleet attack: no learning
    assert s.fleet.reports({}) == []
    # The control plane switches the node to dry_run: the order is re-planned, not installed.
    s.mitigator.mode = "dry_run"
    changes = s.take(None)
    assert [c.action for c in changes] == ["would_add"]
    assert s.kernel() == {} and s.fleet.rules_of(INC) == [DNS_SIG]
    (report,) = s.fleet.reports(s.kernel())
    assert report.in_force_since is None and [r.src_port for r in report.rules] == [53]
    # ... then on: installed.
    s.mitigator.remove_all()  # what the overrides do on a mode change
    s.mitigator.mode = "on"
    s.take(None)
    assert DNS_SIG in s.kernel() and s.fleet.orders[INC].in_force_since is not None


def test_reports_carry_each_rule_with_its_kernel_counters(clean_maps: Any) -> None:
    s = Setup(clean_maps)
    s.take(answer(order(ttl=45.0)))
    (report,) = s.fleet.reports(s.kernel())
    assert report.incident_uuid == INC and report.in_force_since == 1_765_150_000.0
    (figure,) = report.rules
    assert (figure.kind, figure.proto, figure.src_port, figure.ttl_sec) == (
        "signature", 17, 53, 45,
    )  # fmt: skip
    assert (figure.dropped_packets, figure.spared_packets) == (0, 0)
    point = agent_api.MetricPoint(ts=1.0, pps=1.0, bps=1.0, fleet_rules=[report])
    back = msgspec.json.decode(msgspec.json.encode(point), type=agent_api.MetricPoint)
    assert back.fleet_rules == [report]


@pytest.mark.parametrize("mode", ["on", "dry_run"])
def test_the_loop_keeps_fleet_rules_out_of_its_own_incident_release(
    clean_maps: Any, mode: str
) -> None:
    """An incident's release never touches the fleet order's hold on a shared rule."""
    s = Setup(clean_maps, msgspec.structs.replace(CFG, mode=mode))
    s.take(answer(order()))
    s.mitigator.apply([DNS_SIG], NODE_INC, "confirmed")
    s.mitigator.release(NODE_INC)
    s.clock.now += 31.0
    s.mitigator.tick()
    assert s.fleet.rules_of(INC) == [DNS_SIG]
    assert (DNS_SIG in s.kernel()) == (mode == "on")

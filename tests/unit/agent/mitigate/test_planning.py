import ipaddress

from ftagent.config import MitigationConfig
from ftagent.datapath import RuleSpec
from ftagent.evidence.classifier import Classification, Vector
from ftagent.mitigate.planning import (
    plan_rules,
    plan_vector,
    plan_widening,
    vector_metric,
)
from ftagent.mitigate.protection import Protected
from tests.unit.agent.packets import icmp, icmp6, syn, udp

CFG = MitigationConfig(max_source_rules=4, source_share=0.8, rate_limit_min_pps=500)


def limit(metric: str) -> int:
    return 777


def net(text: str):
    return ipaddress.ip_network(text)


def cls(*vectors: Vector) -> Classification:
    return Classification(vectors[0].family, "", vectors, {})


def test_amplification_gets_a_signature_on_its_source_port():
    v = Vector("memcached_amplification", "udp", 1.0, 1e5, amp_port=11211)
    # Even from few sources: the reflectors are many in real life, the port is the signature.
    pkts = [udp("192.0.2.1", 11211, 80, 1400)] * 50
    plan = plan_rules(cls(v), pkts, CFG, Protected(), limit)
    assert plan.rules == [RuleSpec(kind="signature", proto=17, src_port=11211)]
    assert vector_metric(v) == "amp_11211_pps"


def test_dns_and_ntp_reflection_is_rate_limited_not_dropped():
    v = Vector("dns_amplification", "udp", 1.0, 1e5, amp_port=53)
    plan = plan_rules(cls(v), [], CFG, Protected(), limit)
    assert plan.rules == [RuleSpec(kind="signature", proto=17, src_port=53, rate_pps=777)]


def test_syn_flood_from_random_sources_gets_a_syn_rate_limit():
    v = Vector("syn_flood", "tcp", 1.0, 1e5)
    pkts = [syn(f"198.51.100.{i}") for i in range(1, 200)]
    plan = plan_rules(cls(v), pkts, CFG, Protected(), limit)
    assert plan.rules == [
        RuleSpec(kind="signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12, rate_pps=777)
    ]


def test_few_sources_get_exact_source_rules():
    v = Vector("syn_flood", "tcp", 1.0, 1e5)
    pkts = [syn("198.51.100.1")] * 30 + [syn("198.51.100.2")] * 30 + [syn("203.0.113.5")] * 2
    plan = plan_rules(cls(v), pkts, CFG, Protected(), limit)
    assert plan.rules == [
        RuleSpec(kind="src", network=net("198.51.100.1/32")),
        RuleSpec(kind="src", network=net("198.51.100.2/32")),
    ]


def test_udp_flood_spread_over_sources_limits_udp_to_the_targeted_port():
    v = Vector("udp_flood", "udp", 1.0, 1e5)
    pkts = [udp(f"198.51.100.{i}", 5000 + i, 53) for i in range(1, 100)]
    plan = plan_rules(cls(v), pkts, CFG, Protected(), limit)
    assert plan.rules == [RuleSpec(kind="signature", proto=17, dst_port=53, rate_pps=777)]


def test_icmp_flood_covers_both_ip_versions_seen():
    v = Vector("icmp_flood", "icmp", 1.0, 1e5)
    pkts = [icmp(f"198.51.100.{i}") for i in range(1, 40)] + [
        icmp6(f"2001:db8::{i:x}") for i in range(1, 40)
    ]
    plan = plan_rules(cls(v), pkts, CFG, Protected(), limit)
    assert plan.rules == [
        RuleSpec(kind="signature", proto=1, rate_pps=777),
        RuleSpec(kind="signature", proto=58, rate_pps=777),
    ]


def test_protected_sources_are_refused_with_the_reason():
    p = Protected()
    p.add([net("198.51.100.1/32")], "allow-list")
    p.add([net("10.0.0.0/8")], "management prefix")
    p.add([net("192.0.2.10/32")], "control-plane address")
    p.add([net("192.0.2.20/32")], "node's own address")
    v = Vector("udp_flood", "udp", 1.0, 1e5)
    pkts = (
        [udp("198.51.100.1", 1, 2)] * 20
        + [udp("10.1.2.3", 1, 2)] * 20
        + [udp("192.0.2.10", 1, 2)] * 20
        + [udp("192.0.2.20", 1, 2)] * 20
    )
    plan = plan_vector(v, pkts, CFG, p, limit)
    reasons = {r.target: r.reason for r in plan.refused}
    assert reasons == {
        "198.51.100.1/32": "allow-list",
        "10.1.2.3/32": "management prefix",
        "192.0.2.10/32": "control-plane address",
        "192.0.2.20/32": "node's own address",
    }
    assert not any(r.kind == "src" for r in plan.rules)
    # Nothing narrow was allowed: it falls back to the signature (the kernel allow-list
    # still spares the protected networks).
    assert plan.rules == [RuleSpec(kind="signature", proto=17, dst_port=2, rate_pps=777)]


def test_prefixes_overlapping_protected_networks_are_refused():
    p = Protected()
    p.add([net("203.0.113.77/32")], "control-plane address")
    assert p.reason_for(net("203.0.113.0/24")) == "control-plane address"
    assert p.reason_for(net("203.0.114.0/24")) is None
    assert p.reason_for(net("2001:db8::/64")) is None


def test_widening_goes_from_sources_to_prefixes():
    v = Vector("udp_flood", "udp", 1.0, 1e5)
    current = [RuleSpec(kind="src", network=net("198.51.100.1/32"))]
    # What still passes: 60 sources spread over two /24s.
    passed = [udp(f"203.0.113.{i}", 1, 2) for i in range(1, 31)] + [
        udp(f"198.18.7.{i}", 1, 2) for i in range(1, 31)
    ]
    plan = plan_widening(v, passed, current, CFG, Protected(), limit)
    assert set(plan.rules) == {
        RuleSpec(kind="prefix", network=net("203.0.113.0/24")),
        RuleSpec(kind="prefix", network=net("198.18.7.0/24")),
    }
    assert "prefixes" in plan.notes[0]


def test_widening_falls_back_to_the_signature_then_gives_up():
    v = Vector("udp_flood", "udp", 1.0, 1e5)
    passed = [udp(f"10.{i}.{i}.1", 1, 2) for i in range(1, 100)]
    plan = plan_widening(v, passed, [], CFG, Protected(), limit)
    assert plan.rules == [RuleSpec(kind="signature", proto=17, rate_pps=777)]
    again = plan_widening(v, passed, plan.rules, CFG, Protected(), limit)
    assert again.rules == [] and again.notes == ["cannot widen further"]


def test_plan_respects_max_rules():
    cfg = MitigationConfig(max_source_rules=50, source_share=0.8, max_rules=3)
    v = Vector("udp_flood", "udp", 1.0, 1e5)
    pkts = [udp(f"198.51.100.{i}", 1, 2) for i in range(1, 11)] * 5
    plan = plan_rules(cls(v), pkts, cfg, Protected(), limit)
    assert len(plan.rules) == 3
    assert "max_rules" in plan.notes[-1]

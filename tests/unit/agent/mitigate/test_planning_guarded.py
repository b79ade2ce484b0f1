"""The planner with the socket guard on: per family, the socket-aware rule it installs
instead of a class rate limit; source rules for few sources unchanged; the widening that
tightens a guard an attack gets through; plain rules when the guard is off."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment

from ftagent.config import MitigationConfig
from ftagent.datapath import RuleSpec
from ftagent.evidence.classifier import Classification, Vector
from ftagent.evidence.samples import PacketInfo, parse
from ftagent.evidence.signatures import spared_may_be_attack, tightened
from ftagent.mitigate.guard import NO_GUARD, SocketGuard
from ftagent.mitigate.planning import matches_rule, plan_rules, plan_vector, plan_widening
from ftagent.mitigate.protection import Protected
from tests.unit.agent.packets import ETH, icmp, icmp6, sample, syn, udp

CFG = MitigationConfig(max_source_rules=4, source_share=0.8, rate_limit_min_pps=500)
SERVICE_PORT = 9000
# What sources first seen during a 100 kpps attack share under a known-sources rule:
# newcomer_share (0.5 %) of the vector's rate, not the class limit below.
NEWCOMERS = 500


def limit(metric: str) -> int:
    return 777


def bound(port: int) -> bool:
    return port == SERVICE_PORT


GUARD = SocketGuard(True, "on", bound)


def plan(v: Vector, pkts: list[PacketInfo], guard: SocketGuard = GUARD) -> list[RuleSpec]:
    return plan_rules(
        Classification(v.family, "", (v,), {}), pkts, CFG, Protected(), limit, guard
    ).rules


def tcp(src: str, flags: str, dport: int = 443) -> PacketInfo:
    return parse(
        sample(ETH / IP(src=src, dst="10.0.0.2") / TCP(sport=1234, dport=dport, flags=flags))
    )


def later_fragment(src: str, v6: bool = False) -> PacketInfo:
    if v6:
        pkt = ETH / IPv6(src=src, dst="fd00::2") / IPv6ExtHdrFragment(offset=100, m=1, nh=17)
    else:
        pkt = ETH / IP(src=src, dst="10.0.0.2", flags="MF", frag=100, proto=17)
    return parse(sample(pkt / (b"f" * 200)))


def spread(n: int = 100) -> list[str]:
    """n sources, each in a /24 of its own (too spread for source or prefix rules)."""
    return [f"198.51.{i}.{i % 250 + 1}" for i in range(n)]


def test_ack_rst_flood_drop_what_no_connection_wants() -> None:
    ack = plan(Vector("ack_flood", "tcp", 1.0, 1e5), [tcp(s, "A") for s in spread()])
    assert ack == [
        RuleSpec("signature", proto=6, tcp_flags=0x10, tcp_flags_mask=0x17, spare="sockets")
    ]
    rst = plan(Vector("rst_flood", "tcp", 1.0, 1e5), [tcp(s, "R") for s in spread()])
    assert rst == [
        RuleSpec("signature", proto=6, tcp_flags=0x04, tcp_flags_mask=0x04, spare="sockets")
    ]


def test_fin_floods_classify_as_tcp_flood_and_get_a_guarded_tcp_rule() -> None:
    rules = plan(Vector("tcp_flood", "tcp", 1.0, 1e5), [tcp(s, "F", 443) for s in spread()])
    assert rules == [RuleSpec("signature", proto=6, dst_port=443, spare="sockets")]


def test_syn_flood_hands_syns_to_listeners_to_syn_cookies_without_a_rate() -> None:
    rules = plan(Vector("syn_flood", "tcp", 1.0, 1e5), [syn(s) for s in spread()])
    assert rules == [
        RuleSpec("signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12, spare="sockets")
    ]
    assert rules[0].rate_pps is None and not spared_may_be_attack(rules[0])


def test_udp_flood_random_ports_drops_closed_ports() -> None:
    pkts = [udp(s, 1000 + i, 2000 + i * 7) for i, s in enumerate(spread())]
    assert plan(Vector("udp_flood", "udp", 1.0, 1e5), pkts) == [
        RuleSpec("signature", proto=17, spare="sockets")
    ]


def test_udp_flood_at_one_closed_port_is_dropped_there() -> None:
    pkts = [udp(s, 1000 + i, 7777) for i, s in enumerate(spread())]
    assert plan(Vector("udp_flood", "udp", 1.0, 1e5), pkts) == [
        RuleSpec("signature", proto=17, dst_port=7777, spare="sockets")
    ]


def test_udp_service_flood_passes_known_sources_and_limits_new_ones() -> None:
    pkts = [udp(s, 1000 + i, SERVICE_PORT) for i, s in enumerate(spread())]
    assert plan(Vector("udp_flood", "udp", 1.0, 1e5), pkts) == [
        RuleSpec(
            "signature",
            proto=17,
            dst_port=SERVICE_PORT,
            spare="connected",
            spare_known=True,
            rate_pps=NEWCOMERS,
        )
    ]


def test_newcomers_share_a_share_of_the_flood_with_a_floor() -> None:
    # not the class rate limit (777 here): 0.5 % of the vector's rate, at least the floor
    pkts = [udp(s, 1000 + i, SERVICE_PORT) for i, s in enumerate(spread())]
    big = plan(Vector("udp_flood", "udp", 1.0, 4e5), pkts)
    small = plan(Vector("udp_flood", "udp", 1.0, 2e3), pkts)
    assert [r.rate_pps for r in big] == [2000]
    assert [r.rate_pps for r in small] == [CFG.newcomer_min_pps]
    assert CFG.newcomer_min_pps == 100 and CFG.newcomer_share == 0.005


def test_amplification_drops_all_but_answers_to_own_sockets_53_and_123_included() -> None:
    for port, family in ((53, "dns"), (123, "ntp"), (11211, "memcached")):
        v = Vector(f"{family}_amplification", "udp", 1.0, 1e5, amp_port=port)
        # few reflectors or many: the port is the signature
        assert plan(v, [udp("192.0.2.1", port, 40000)] * 50) == [
            RuleSpec("signature", proto=17, src_port=port, spare="connected")
        ]


def test_icmp_flood_limits_echo_and_spares_errors_and_known_sources() -> None:
    pkts = [icmp(s) for s in spread(40)] + [icmp6(f"2001:db8::{i:x}") for i in range(1, 40)]
    assert plan(Vector("icmp_flood", "icmp", 1.0, 1e5), pkts) == [
        RuleSpec("signature", proto=p, rate_pps=NEWCOMERS, spare="sockets", spare_known=True)
        for p in (1, 58)
    ]


def test_fragment_flood_gets_a_fragment_rule_for_both_ip_versions() -> None:
    pkts = [later_fragment(s) for s in spread(60)] + [
        later_fragment(f"2001:db8:{i:x}::1", v6=True) for i in range(1, 60)
    ]
    v = Vector("fragment_flood", "udp", 1.0, 1e5)
    assert plan(v, pkts) == [RuleSpec("signature", proto=17, fragments=True, spare="sockets")]
    # without the guard there is no fragment rule (plain rules have none): nothing fits
    assert plan(v, pkts, NO_GUARD) == []


def test_fragment_flood_from_few_prefixes_still_gets_prefix_rules() -> None:
    pkts = [later_fragment(f"203.0.113.{i}") for i in range(1, 200)]
    assert plan(Vector("fragment_flood", "udp", 1.0, 1e5), pkts) == [
        RuleSpec("prefix", ipaddress.ip_network("203.0.113.0/24"))
    ]


def test_few_sources_still_get_source_rules() -> None:
    pkts = [tcp("198.51.100.1", "A")] * 40 + [tcp("198.51.100.2", "A")] * 40
    assert plan(Vector("ack_flood", "tcp", 1.0, 1e5), pkts) == [
        RuleSpec("src", ipaddress.ip_network("198.51.100.1/32")),
        RuleSpec("src", ipaddress.ip_network("198.51.100.2/32")),
    ]


def test_without_the_guard_todays_rules_come_back() -> None:
    v = Vector("dns_amplification", "udp", 1.0, 1e5, amp_port=53)
    assert plan(v, [], NO_GUARD) == [RuleSpec("signature", proto=17, src_port=53, rate_pps=777)]
    acks = [tcp(s, "A") for s in spread()]
    assert plan(Vector("ack_flood", "tcp", 1.0, 1e5), acks, NO_GUARD) == [
        RuleSpec("signature", proto=6, tcp_flags=0x10, tcp_flags_mask=0x17, rate_pps=777)
    ]


def test_a_udp_guard_the_flood_gets_through_is_tightened_then_widening_stops() -> None:
    # The flood hit the service port but the samples at planning time were too few to
    # see it: the rule spares any socket, and the flood passes it (spared = leak).
    v = Vector("udp_flood", "udp", 1.0, 1e5)
    first = plan_vector(v, [], CFG, Protected(), limit, GUARD).rules
    assert first == [RuleSpec("signature", proto=17, spare="sockets")]
    assert spared_may_be_attack(first[0])
    passed = [udp(s, 1000 + i, SERVICE_PORT) for i, s in enumerate(spread())]
    wider = plan_widening(v, passed, first, CFG, Protected(), limit, GUARD)
    tight = RuleSpec("signature", proto=17, spare="connected", spare_known=True, rate_pps=NEWCOMERS)
    assert wider.rules == [tight] and tight.same_match(first[0])
    assert not spared_may_be_attack(tight)
    again = plan_widening(v, passed, [tight], CFG, Protected(), limit, GUARD)
    assert again.rules == [] and again.notes == ["cannot widen further"]


def test_tcp_guards_are_not_tightened() -> None:
    v = Vector("syn_flood", "tcp", 1.0, 1e5)
    current = plan_vector(v, [], CFG, Protected(), limit, GUARD).rules
    passed = [syn(s) for s in spread()]
    assert plan_widening(v, passed, current, CFG, Protected(), limit, GUARD).rules == []


def test_matches_rule_ties_rules_to_their_vector() -> None:
    amp = Vector("dns_amplification", "udp", 1.0, 1e5, amp_port=53)
    assert matches_rule(amp, RuleSpec("signature", proto=17, src_port=53, spare="connected"))
    assert not matches_rule(amp, RuleSpec("signature", proto=17, spare="sockets"))
    syn_v = Vector("syn_flood", "tcp", 1.0, 1e5)
    assert matches_rule(syn_v, RuleSpec("signature", proto=6, spare="sockets"))
    assert not matches_rule(syn_v, RuleSpec("src", ipaddress.ip_network("192.0.2.1/32")))


def test_a_small_pool_of_repeating_sources_through_a_known_rule_gets_source_rules() -> None:
    # Repeating newcomers pass a known-sources rule on their second chance; a flood from a
    # small pool of spoofed addresses that repeat shows in the passed samples as few heavy
    # sources, and the widening makes exact-source rules of them (checked before any
    # signature rule in the kernel).
    v = Vector("udp_flood", "udp", 1.0, 4e4)
    service = plan_vector(v, [], CFG, Protected(), limit, GUARD).rules
    tight = tightened(service[0], NEWCOMERS) or service[0]
    pool = [f"203.0.113.{i}" for i in (7, 8, 9)]
    passed = [udp(pool[i % 3], 1000 + i, SERVICE_PORT) for i in range(90)]
    wider = plan_widening(v, passed, [tight], CFG, Protected(), limit, GUARD)
    assert wider.rules == [RuleSpec("src", network=ipaddress.ip_network(f"{a}/32")) for a in pool]

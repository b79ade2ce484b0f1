"""Drop rules, allow-list, expiry, rate limits, per-rule counters, sampling and top sources,
through BPF_PROG_TEST_RUN on the real kernel."""

from __future__ import annotations

import ipaddress
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ftagent.bpf.rule_spec import RuleError
from ftagent.datapath import RuleSpec
from lab.bpf_testrun import XDP_DROP, XDP_PASS

from .conftest import Prog

pytestmark = [pytest.mark.kernel, pytest.mark.paced]

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
net = ipaddress.ip_network
addr = ipaddress.ip_address


def v4(src: str = "198.51.100.7", dst: str = "203.0.113.9", l4: object = None) -> bytes:
    return bytes(ETH / IP(src=src, dst=dst) / (l4 or UDP(sport=40000, dport=9)) / Raw(b"x" * 30))


def v6(src: str = "2001:db8::7", dst: str = "2001:db8:1::9", l4: object = None) -> bytes:
    return bytes(ETH / IPv6(src=src, dst=dst) / (l4 or UDP(sport=40000, dport=9)) / Raw(b"y" * 30))


def rule_of(prog: Prog, spec: RuleSpec):
    found = [r for r in prog.maps.list_rules() if r.spec == spec]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("spec", "hit", "miss", "reason"),
    [
        (RuleSpec("src", net("198.51.100.7/32")), v4(), v4(src="198.51.100.8"), "drop_src"),
        (RuleSpec("src", net("2001:db8::7/128")), v6(), v6(src="2001:db8::8"), "drop_src"),
        (RuleSpec("prefix", net("198.51.100.0/24")), v4(src="198.51.100.200"),
         v4(src="198.51.101.1"), "drop_prefix"),
        (RuleSpec("prefix", net("2001:db8::/48")), v6(src="2001:db8:0:ffff::1"),
         v6(src="2001:db9::1"), "drop_prefix"),
        (RuleSpec("signature", proto=17, src_port=11211), v4(l4=UDP(sport=11211, dport=5)),
         v4(l4=UDP(sport=11212, dport=5)), "drop_signature"),
        (RuleSpec("signature", proto=6, dst_port=80), v6(l4=TCP(dport=80)),
         v6(l4=TCP(dport=81)), "drop_signature"),
        (RuleSpec("signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12),
         v4(l4=TCP(flags="S")), v4(l4=TCP(flags="SA")), "drop_signature"),
        (RuleSpec("signature", proto=17, src_port=53, dst=addr("203.0.113.9")),
         v4(l4=UDP(sport=53)), v4(dst="203.0.113.10", l4=UDP(sport=53)), "drop_signature"),
        (RuleSpec("signature", proto=17, dst=addr("2001:db8:1::9")), v6(),
         v6(dst="2001:db8:1::8"), "drop_signature"),
    ],
    ids=["src4", "src6", "prefix4", "prefix6", "sig-sport", "sig-dport6", "sig-synflags",
         "sig-dst4", "sig-dst6"],
)
def test_rule_drops_matches_only(prog: Prog, spec: RuleSpec, hit: bytes, miss: bytes,
                                 reason: str) -> None:
    prog.maps.add_rule(spec, ttl_s=60)
    retval, d = prog.run(hit, repeat=7)
    assert retval == XDP_DROP
    assert d.verdicts == {reason: 7}
    retval, d = prog.run(miss, repeat=3)
    assert retval == XDP_PASS
    assert d.verdicts == {"passed": 3}
    rule = rule_of(prog, spec)
    assert (rule.dropped_packets, rule.dropped_bytes) == (7, 7 * len(hit))


def test_proto_only_signature_drops_nonfirst_fragments(prog: Prog) -> None:
    prog.maps.add_rule(RuleSpec("signature", proto=17), ttl_s=60)
    frag = bytes(ETH / IP(src="198.51.100.7", proto=17, frag=100) / Raw(b"z" * 50))
    retval, d = prog.run(frag)
    assert retval == XDP_DROP and d.verdicts == {"drop_signature": 1}
    # A port rule cannot judge a fragment without its UDP header.
    prog.reset()
    prog.maps.add_rule(RuleSpec("signature", proto=17, src_port=53), ttl_s=60)
    retval, d = prog.run(frag)
    assert retval == XDP_PASS and d.verdicts == {"passed": 1}


def test_allowlist_beats_every_rule_kind(prog: Prog) -> None:
    prog.maps.add_rule(RuleSpec("src", net("198.51.100.7/32")), 60)
    prog.maps.add_rule(RuleSpec("prefix", net("198.51.0.0/16")), 60)
    prog.maps.add_rule(RuleSpec("signature", proto=17), 60)
    prog.maps.add_rule(RuleSpec("src", net("2001:db8::7/128")), 60)
    prog.maps.set_allowlist([net("198.51.100.0/24"), net("2001:db8::/64")])
    retval, d = prog.run(v4(), repeat=4)
    assert retval == XDP_PASS and d.verdicts == {"allowlisted": 4}
    retval, d = prog.run(v6(), repeat=2)
    assert retval == XDP_PASS and d.verdicts == {"allowlisted": 2}
    assert all(r.dropped_packets == 0 for r in prog.maps.list_rules())
    # Outside the allow-list the prefix rule still drops.
    retval, d = prog.run(v4(src="198.51.7.7"))
    assert retval == XDP_DROP and d.verdicts == {"drop_prefix": 1}
    assert sorted(map(str, prog.maps.allowlist())) == ["198.51.100.0/24", "2001:db8::/64"]
    prog.maps.set_allowlist([])
    retval, _ = prog.run(v4())
    assert retval == XDP_DROP


def test_expired_rule_drops_nothing(prog: Prog) -> None:
    spec = RuleSpec("src", net("198.51.100.7/32"))
    sig = RuleSpec("signature", proto=17, src_port=40000)
    prog.maps.add_rule(spec, ttl_s=0.05)
    prog.maps.add_rule(sig, ttl_s=0.05)
    time.sleep(0.1)
    retval, d = prog.run(v4(), repeat=5)
    assert retval == XDP_PASS and d.verdicts == {"passed": 5}
    # Still installed (nobody removed it): the program itself ignored it.
    assert rule_of(prog, spec).dropped_packets == 0
    assert prog.maps.remove_expired_rules() == 2
    assert prog.maps.list_rules() == []


def test_renew_keeps_counters_and_extends_expiry(prog: Prog) -> None:
    spec = RuleSpec("src", net("198.51.100.7/32"))
    first = prog.maps.add_rule(spec, ttl_s=1)
    prog.run(v4(), repeat=3)
    renewed = prog.maps.add_rule(spec, ttl_s=100)
    assert renewed.expires_ns > first.expires_ns + 50 * 10**9
    assert renewed.dropped_packets == 3
    assert len(prog.maps.list_rules()) == 1
    sig = RuleSpec("signature", proto=6, dst_port=22)
    prog.maps.add_rule(sig, 1)
    prog.run(v4(src="192.0.2.99", l4=TCP(dport=22)), repeat=2)
    assert prog.maps.add_rule(sig, 50).dropped_packets == 2


def test_rate_limit_rule_passes_about_its_rate(prog: Prog) -> None:
    spec = RuleSpec("src", net("198.51.100.7/32"), rate_pps=1000)
    prog.maps.add_rule(spec, ttl_s=60)
    # A burst far faster than the rate: the bucket (one second of tokens) passes ~1000.
    _, d = prog.run(v4(), repeat=20_000)
    passed = d.verdicts.get("passed", 0)
    assert 1000 <= passed <= 1200, d.verdicts
    assert d.verdicts["rate_limited"] == 20_000 - passed
    time.sleep(0.3)
    _, d = prog.run(v4(), repeat=20_000)
    assert 200 <= d.verdicts.get("passed", 0) <= 450, d.verdicts
    rule = rule_of(prog, spec)
    assert rule.dropped_packets == 40_000 - passed - d.verdicts.get("passed", 0)


def test_signature_rate_limit(prog: Prog) -> None:
    spec = RuleSpec("signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12, rate_pps=500)
    prog.maps.add_rule(spec, ttl_s=60)
    _, d = prog.run(v4(l4=TCP(flags="S")), repeat=5000)
    assert 500 <= d.verdicts.get("passed", 0) <= 650
    assert d.verdicts["rate_limited"] == 5000 - d.verdicts["passed"]


def test_each_rule_counts_its_own_drops(prog: Prog) -> None:
    a = RuleSpec("src", net("198.51.100.1/32"))
    b = RuleSpec("src", net("198.51.100.2/32"))
    c = RuleSpec("prefix", net("10.0.0.0/8"))
    for spec in (a, b, c):
        prog.maps.add_rule(spec, 60)
    prog.run(v4(src="198.51.100.1"), repeat=2)
    prog.run(v4(src="198.51.100.2"), repeat=5)
    prog.run(v4(src="10.1.2.3"), repeat=11)
    got = {r.spec: r.dropped_packets for r in prog.maps.list_rules()}
    assert got == {a: 2, b: 5, c: 11}
    assert prog.maps.remove_rule(b) is True
    assert prog.maps.remove_rule(b) is False
    # A new rule on a reused counter slot starts from zero.
    prog.maps.add_rule(b, 60)
    assert rule_of(prog, b).dropped_packets == 0


def test_exact_rule_wins_over_prefix_and_signature(prog: Prog) -> None:
    prog.maps.add_rule(RuleSpec("src", net("198.51.100.7/32")), 60)
    prog.maps.add_rule(RuleSpec("prefix", net("198.51.100.0/24")), 60)
    prog.maps.add_rule(RuleSpec("signature", proto=17), 60)
    _, d = prog.run(v4())
    assert d.verdicts == {"drop_src": 1}


def test_bad_rules_are_refused(prog: Prog) -> None:
    bad = [
        RuleSpec("src", net("198.51.100.0/24")),
        RuleSpec("prefix", None),
        RuleSpec("signature", proto=47),
        RuleSpec("signature", proto=1, src_port=5),
        RuleSpec("signature", proto=17, tcp_flags=2, tcp_flags_mask=2),
        RuleSpec("signature", proto=6, tcp_flags=3, tcp_flags_mask=1),
        RuleSpec("signature", proto=17, src_port=70000),
        RuleSpec("src", net("198.51.100.7/32"), rate_pps=0),
    ]
    for spec in bad:
        with pytest.raises(RuleError):
            prog.maps.add_rule(spec, 60)
    with pytest.raises(RuleError):
        prog.maps.add_rule(RuleSpec("src", net("198.51.100.7/32")), 0)
    assert prog.maps.list_rules() == []


def test_signature_table_full(prog: Prog) -> None:
    size = prog.maps.tables["rsig"].max_entries
    for port in range(size):
        prog.maps.add_rule(RuleSpec("signature", proto=17, dst_port=port + 1), 60)
    with pytest.raises(RuleError, match="full"):
        prog.maps.add_rule(RuleSpec("signature", proto=17, dst_port=9999), 60)
    # The last slot still matches (the program scans all of them).
    retval, _ = prog.run(v4(l4=UDP(dport=size)))
    assert retval == XDP_DROP


def test_list_rules_round_trips_every_field(prog: Prog) -> None:
    specs = [
        RuleSpec("src", net("198.51.100.7/32"), rate_pps=10),
        RuleSpec("src", net("2001:db8::1/128")),
        RuleSpec("prefix", net("192.0.2.0/25")),
        RuleSpec("prefix", net("2001:db8:ab00::/40")),
        RuleSpec("signature", proto=17, src_port=123, dst_port=4444, dst=addr("203.0.113.9")),
        RuleSpec("signature", proto=6, tcp_flags=0x10, tcp_flags_mask=0x17, rate_pps=99),
        RuleSpec("signature", proto=58, dst=addr("2001:db8:1::9")),
    ]
    for spec in specs:
        prog.maps.add_rule(spec, 30)
    listed = prog.maps.list_rules()
    assert sorted(r.spec.describe() for r in listed) == sorted(s.describe() for s in specs)
    assert {r.spec for r in listed} == set(specs)
    now = time.monotonic_ns()
    assert all(now < r.expires_ns <= now + 31 * 10**9 for r in listed)


@pytest.mark.parametrize("which", ["ring", "perf"])
def test_sampling_one_in_n(prog: Prog, perf_prog: Prog, which: str) -> None:
    p = prog if which == "ring" else perf_prog
    p.reset()
    p.maps.add_rule(RuleSpec("src", net("198.51.100.9/32")), 60)
    p.maps.set_sample_rate(4)
    big = v4(src="198.51.100.9") + b"\xab" * 300
    small = v4()
    p.run(small, repeat=40)
    p.run(big, repeat=40)
    samples = p.maps.poll_samples(1000)
    assert len(samples) == 20
    small_s = [s for s in samples if s.wire_len == len(small)]
    big_s = [s for s in samples if s.wire_len == len(big)]
    assert len(small_s) == 10 and len(big_s) == 10
    assert all(s.data == small and s.verdict == "passed" for s in small_s)
    assert all(s.data == big[:128] and s.verdict == "drop_src" for s in big_s)
    assert all(s.timestamp_ns <= time.monotonic_ns() for s in samples)
    p.maps.set_sample_rate(0)
    p.run(small, repeat=10)
    assert p.maps.poll_samples() == []
    p.reset()


def test_poll_samples_respects_max_items(prog: Prog) -> None:
    prog.maps.set_sample_rate(1)
    prog.run(v4(), repeat=30)
    first = prog.maps.poll_samples(max_items=10)
    rest = prog.maps.poll_samples(max_items=1000)
    assert len(first) == 10 and len(rest) == 20


def test_top_sources_count_and_age(prog: Prog) -> None:
    prog.maps.age_sources(time.monotonic_ns() + 10**9)  # start empty
    prog.maps.set_source_insert_rate(1)
    prog.run(v4(src="192.0.2.1"), repeat=50)
    prog.run(v4(src="192.0.2.2"), repeat=5)
    prog.run(v6(src="2001:db8::5"), repeat=20)
    top = prog.maps.top_sources(2)
    assert [(str(s.address), s.packets) for s in top] == [("192.0.2.1", 50), ("2001:db8::5", 20)]
    assert top[0].bytes == 50 * len(v4())
    assert abs(top[0].last_seen_ns - time.monotonic_ns()) < 5 * 10**9
    assert len(prog.maps.top_sources(100)) == 3
    assert prog.maps.age_sources(time.monotonic_ns() + 10**9) == 3
    assert prog.maps.top_sources(100) == []


def test_top_sources_sample_and_hold(prog: Prog) -> None:
    prog.maps.age_sources(time.monotonic_ns() + 10**9)
    prog.maps.set_source_insert_rate(8)
    for i in range(160):  # 160 one-packet (spoofed-looking) sources
        prog.run(v4(src=f"10.9.{i // 250}.{i % 250 + 1}"))
    admitted = len(prog.maps.top_sources(1000))
    assert 10 <= admitted <= 40, admitted  # ~1 in 8 (per-CPU countdowns)
    # A heavy source gets in after a few packets and is then counted exactly.
    prog.run(v4(src="192.0.2.77"), repeat=100)
    heavy = [s for s in prog.maps.top_sources(1000) if str(s.address) == "192.0.2.77"]
    assert heavy and 92 <= heavy[0].packets <= 100


def test_class_counters_count_packets_before_rules(prog: Prog) -> None:
    """The contract (ftagent/datapath.py Counters): a dropped packet is still counted in
    its classes, so the agent's detector keeps seeing a mitigated attack."""
    spec = RuleSpec("signature", proto=17, src_port=11211)
    prog.maps.add_rule(spec, ttl_s=60)
    frame = v4(l4=UDP(sport=11211, dport=5))
    retval, d = prog.run(frame, repeat=5)
    assert retval == XDP_DROP and d.verdicts == {"drop_signature": 5}
    assert (d.packets["total"], d.packets["ipv4"], d.packets["udp"]) == (5, 5, 5)
    assert d.bytes["udp"] == 5 * len(frame)
    assert d.udp_ports == {"11211": 5}
    assert sum(d.sizes.values()) == 5


def test_allowlisted_counts_only_packets_a_rule_would_have_dropped(prog: Prog) -> None:
    """`allowlisted` = spared from a matching rule; allow-listed traffic no rule matches
    is simply `passed` (the allow-list is consulted only on a rule match)."""
    prog.maps.set_allowlist([net("198.51.100.0/24")])
    retval, d = prog.run(v4(), repeat=3)
    assert retval == XDP_PASS and d.verdicts == {"passed": 3}
    prog.maps.add_rule(RuleSpec("src", net("198.51.100.7/32")), 60)
    retval, d = prog.run(v4(), repeat=3)
    assert retval == XDP_PASS and d.verdicts == {"allowlisted": 3}
    assert d.packets["total"] == 3

import ipaddress
from typing import Any

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Dot1Q

from ftagent.evidence.samples import parse, summarize
from tests.unit.agent.packets import ETH, sample, syn, udp


def test_ipv4_udp_fields():
    p = udp("192.0.2.7", 11211, 4444, size=1400)
    assert p.ip_version == 4
    assert p.src == ipaddress.ip_address("192.0.2.7")
    assert (p.proto, p.sport, p.dport) == (17, 11211, 4444)
    assert p.wire_len > 1400
    assert not p.fragment


def test_tcp_flags_behind_a_vlan_tag():
    pkt = ETH / Dot1Q(vlan=7) / IP(src="198.51.100.1", dst="10.0.0.2") / TCP(flags="SA", dport=443)
    p = parse(sample(pkt))
    assert p.proto == 6 and p.dport == 443 and p.tcp_flags == 0x12


def test_ipv6_with_fragment_header():
    first, second = fragment6_pair()
    a, b = parse(sample(first)), parse(sample(second))
    assert a.ip_version == 6 and a.fragment and not a.later_fragment and a.proto == 17
    assert a.sport == 53
    assert b.fragment and b.later_fragment and b.sport is None


def fragment6_pair() -> tuple[Any, Any]:
    base = ETH / IPv6(src="2001:db8::1", dst="fd00::2")
    first = (
        base / IPv6ExtHdrFragment(offset=0, m=1, nh=17) / UDP(sport=53, dport=5000) / (b"a" * 64)
    )
    second = base / IPv6ExtHdrFragment(offset=9, m=0, nh=17) / (b"b" * 64)
    return first, second


def test_ipv4_fragments():
    frags = fragment(  # type: ignore[no-untyped-call]
        IP(src="203.0.113.9", dst="10.0.0.2") / UDP(sport=53, dport=9) / (b"z" * 3000),
        fragsize=1000,
    )
    parsed = [parse(sample(ETH / f)) for f in frags]
    assert all(p.fragment for p in parsed)
    assert parsed[0].sport == 53 and not parsed[0].later_fragment
    assert all(p.later_fragment and p.sport is None for p in parsed[1:])


def test_truncated_and_non_ip_do_not_raise():
    from ftagent.datapath import Sample

    assert parse(Sample(0, 10, "malformed", b"\x00" * 10)).ip_version == 0
    cut = bytes(ETH / IP(src="1.2.3.4", dst="10.0.0.2") / UDP())[:20]
    assert parse(Sample(0, 60, "passed", cut)).src is None


def test_summary_counts_sources_and_ports():
    pkts = [syn("198.51.100.1")] * 8 + [syn("198.51.100.2", dport=22)] * 2
    s = summarize(pkts)
    assert s.count == 10
    assert s.top_dst_ports(1) == [{"port": 80, "share": 0.8}]
    assert s.source_share(1) == 0.8
    assert len(s.sources) == 2

"""Parsing and accounting through BPF_PROG_TEST_RUN: every class, VLAN/QinQ, IPv6 extension
headers, IPv4 options and fragments, frames cut at every header boundary."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

from ftagent.datapath import AMP_PORTS
from lab.bpf_testrun import XDP_PASS

from .conftest import Prog

pytestmark = [pytest.mark.kernel]

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = IP(src="198.51.100.7", dst="203.0.113.9")
V6 = IPv6(src="2001:db8::7", dst="2001:db8:1::9")


def frame(pkt: Packet) -> bytes:
    return bytes(pkt)


CLASS_CASES = [
    ("ipv4-udp", ETH / V4 / UDP(sport=40000, dport=53) / Raw(b"q" * 20), {"ipv4", "udp"}),
    ("ipv4-tcp", ETH / V4 / TCP(sport=40000, dport=80, flags="S"), {"ipv4", "tcp"}),
    ("ipv4-icmp", ETH / V4 / ICMP() / Raw(b"p" * 8), {"ipv4", "icmp"}),
    ("ipv4-gre", ETH / IP(src="198.51.100.7", dst="203.0.113.9", proto=47) / Raw(b"g" * 8),
     {"ipv4", "other_l4"}),
    ("ipv6-udp", ETH / V6 / UDP(sport=40000, dport=53), {"ipv6", "udp"}),
    ("ipv6-tcp", ETH / V6 / TCP(sport=40000, dport=443, flags="A"), {"ipv6", "tcp"}),
    ("ipv6-icmp", ETH / V6 / ICMPv6EchoRequest(), {"ipv6", "icmp"}),
    ("arp", ETH / ARP(), {"other_l3"}),
    ("vlan", ETH / Dot1Q(vlan=10) / V4 / UDP(sport=1, dport=2), {"ipv4", "udp"}),
    ("qinq", Ether(dst="02:00:00:00:00:02") / Dot1AD(vlan=100) / Dot1Q(vlan=10) / V6
     / TCP(flags="S"), {"ipv6", "tcp"}),
    ("ipv4-options", ETH / IP(src="198.51.100.7", dst="203.0.113.9", options=[IPOption_RR()])
     / TCP(flags="R"), {"ipv4", "tcp"}),
    ("ipv6-ext", ETH / V6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt()
     / UDP(sport=123, dport=9), {"ipv6", "udp"}),
    ("ipv4-first-fragment", ETH / IP(src="198.51.100.7", dst="203.0.113.9", flags="MF", frag=0)
     / UDP(sport=53, dport=9) / Raw(b"x" * 64), {"ipv4", "udp", "fragment"}),
    ("ipv4-nonfirst-fragment", ETH / IP(src="198.51.100.7", dst="203.0.113.9", proto=17,
     frag=100) / Raw(b"x" * 64), {"ipv4", "udp", "fragment"}),
    ("ipv6-first-fragment", ETH / V6 / IPv6ExtHdrFragment(offset=0, m=1) / UDP(sport=53, dport=9)
     / Raw(b"x" * 32), {"ipv6", "udp", "fragment"}),
    ("ipv6-nonfirst-fragment", ETH / V6 / IPv6ExtHdrFragment(offset=50, m=0, nh=17)
     / Raw(b"x" * 32), {"ipv6", "udp", "fragment"}),
    ("ipv6-dstopt-fragment-tcp", ETH / V6 / IPv6ExtHdrDestOpt() / IPv6ExtHdrFragment(offset=0)
     / TCP(flags="F"), {"ipv6", "tcp", "fragment"}),
]


@pytest.mark.parametrize(("name", "pkt", "classes"), CLASS_CASES, ids=[c[0] for c in CLASS_CASES])
def test_class_counters(prog: Prog, name: str, pkt: Packet, classes: set[str]) -> None:
    data = frame(pkt)
    retval, d = prog.run(data, repeat=3)
    assert retval == XDP_PASS
    assert d.packets == {c: 3 for c in classes | {"total"}}
    assert d.bytes == {c: 3 * len(data) for c in classes | {"total"}}
    assert d.verdicts == {"passed": 3}


def test_three_vlan_tags_are_other_l3(prog: Prog) -> None:
    # Only two tags are parsed; what is behind a third is not IP to us, and not malformed.
    pkt = ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / V4 / UDP()
    _, d = prog.run(frame(pkt))
    assert d.packets == {"total": 1, "other_l3": 1}
    assert d.verdicts == {"passed": 1}


def test_too_many_ipv6_extension_headers(prog: Prog) -> None:
    # Four extension headers are skipped; a fifth is left as the "protocol" (other_l4).
    pkt = ETH / V6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() \
        / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / UDP()
    _, d = prog.run(frame(pkt))
    assert d.packets == {"total": 1, "ipv6": 1, "other_l4": 1}
    assert d.verdicts == {"passed": 1}


@pytest.mark.parametrize(
    ("flags", "cls"),
    [("S", "syn"), ("SA", "synack"), ("A", "ack"), ("PA", "ack"), ("R", "rst"), ("RA", "rst"),
     ("F", "fin"), ("FA", "fin"), ("", "other"), ("U", "other"), ("SR", "rst")],
)
def test_tcp_flag_classes(prog: Prog, flags: str, cls: str) -> None:
    _, d = prog.run(frame(ETH / V4 / TCP(flags=flags)))
    assert d.tcp_flags == {cls: 1}
    _, d6 = prog.run(frame(ETH / V6 / TCP(flags=flags)))
    assert d6.tcp_flags == {cls: 1}


@pytest.mark.parametrize("sport", [*AMP_PORTS, 40000, 0, 65535])
def test_udp_amplification_ports(prog: Prog, sport: int) -> None:
    data = frame(ETH / V4 / UDP(sport=sport, dport=9) / Raw(b"r" * 100))
    _, d = prog.run(data, repeat=2)
    name = str(sport) if sport in AMP_PORTS else "other"
    assert d.udp_ports == {name: 2}
    after = prog.maps.read_counters()
    assert after.udp_src_port_bytes[name] >= 2 * len(data)


def test_udp_ports_not_counted_for_tcp_or_nonfirst_fragments(prog: Prog) -> None:
    _, d = prog.run(frame(ETH / V4 / TCP(sport=53)))
    assert d.udp_ports == {}
    _, d = prog.run(frame(ETH / IP(proto=17, frag=10) / Raw(b"\x00\x35" + b"x" * 30)))
    assert d.udp_ports == {}


@pytest.mark.parametrize(
    ("size", "bucket"),
    [(60, "le_64"), (64, "le_64"), (65, "le_128"), (128, "le_128"), (129, "le_256"),
     (256, "le_256"), (257, "le_512"), (512, "le_512"), (1024, "le_1024"), (1025, "le_1500"),
     (1500, "le_1500"), (1501, "gt_1500"), (3000, "gt_1500")],
)
def test_size_histogram(prog: Prog, size: int, bucket: str) -> None:
    base = frame(ETH / V4 / UDP())
    data = base + b"\x00" * (size - len(base))
    assert len(data) == size
    _, d = prog.run(data)
    assert d.sizes == {bucket: 1}
    assert d.bytes["total"] == size


# ---- truncation: cut every frame at every header boundary (and one byte past it) ----

def _layers(pkt: Packet) -> list[tuple[str, int]]:
    """(layer name, end offset of that layer's header) for every header layer."""
    out: list[tuple[str, int]] = []
    offset = 0
    layer: Packet | None = pkt
    while layer is not None and not isinstance(layer, Raw):
        hdr = len(bytes(layer)) - len(bytes(layer.payload))
        offset += hdr
        out.append((layer.__class__.__name__, offset))
        layer = layer.payload if layer.payload else None
    return out


TRUNC_CASES = [
    ("v4-udp", ETH / V4 / UDP(sport=53) / Raw(b"x" * 10), "ipv4", "udp"),
    ("v4-tcp", ETH / V4 / TCP(flags="S") / Raw(b"x" * 10), "ipv4", "tcp"),
    ("v4-icmp", ETH / V4 / ICMP() / Raw(b"x" * 10), "ipv4", "icmp"),
    ("v4-options-tcp", ETH / IP(options=[IPOption_RR()]) / TCP(), "ipv4", "tcp"),
    ("qinq-v4-udp", Ether() / Dot1AD(vlan=5) / Dot1Q(vlan=6) / V4 / UDP() / Raw(b"x" * 4),
     "ipv4", "udp"),
    ("v6-tcp", ETH / V6 / TCP() / Raw(b"x" * 4), "ipv6", "tcp"),
    ("v6-ext-udp", ETH / V6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrFragment()
     / UDP() / Raw(b"x" * 4), "ipv6", "udp"),
    ("v6-icmp", ETH / V6 / ICMPv6EchoRequest() / Raw(b"x" * 4), "ipv6", "icmp"),
]


@pytest.mark.parametrize(("name", "pkt", "l3", "l4"), TRUNC_CASES, ids=[c[0] for c in TRUNC_CASES])
def test_truncated_at_every_header_boundary(prog: Prog, name: str, pkt: Packet, l3: str,
                                            l4: str) -> None:
    data = frame(pkt)
    layers = _layers(pkt)
    full = layers[-1][1]  # end of the L4 header
    # Where the L2 headers end (Ethernet + VLAN tags) and where the L4 protocol is known.
    l2_end = max(end for lname, end in layers if lname in ("Ether", "Dot1Q", "Dot1AD"))
    ip_end = layers[-2][1]
    cuts = sorted({end for _, end in layers[:-1]} | {end + 1 for _, end in layers[:-1]}
                  | {full - 1})
    checked = 0
    for cut in cuts:
        if cut < 14 or cut >= full:
            continue
        _, d = prog.run(data[:cut])
        l3_class = l3 if cut >= l2_end else "other_l3"
        expected = {"total": 1, l3_class: 1}
        if cut >= ip_end:
            expected[l4] = 1
        if "Fragment" in "".join(n for n, _ in layers) and cut >= ip_end:
            expected["fragment"] = 1
        assert d.packets == expected, f"cut at {cut}"
        assert d.verdicts == {"malformed": 1}, f"cut at {cut}"
        assert d.tcp_flags == {} and d.udp_ports == {}, f"cut at {cut}"
        checked += 1
    assert checked >= 2
    # The whole frame is fine.
    _, d = prog.run(data)
    assert d.verdicts == {"passed": 1}


def test_bad_ipv4_header_is_malformed(prog: Prog) -> None:
    bad_ihl = bytearray(frame(ETH / V4 / UDP()))
    bad_ihl[14] = 0x43  # version 4, ihl 3 (< 5)
    _, d = prog.run(bytes(bad_ihl))
    assert d.verdicts == {"malformed": 1}
    assert d.packets == {"total": 1, "ipv4": 1}
    long_ihl = bytearray(frame(ETH / V4 / UDP()))
    long_ihl[14] = 0x4F  # ihl 15 = 60 bytes, more than the frame holds after Ethernet
    _, d = prog.run(bytes(long_ihl[:14 + 40]))
    assert d.verdicts == {"malformed": 1}


def test_each_packet_gets_exactly_one_verdict(prog: Prog) -> None:
    for _, pkt, _ in CLASS_CASES:
        _, d = prog.run(frame(pkt), repeat=5)
        assert sum(d.verdicts.values()) == 5
        assert d.packets["total"] == 5

"""Socket-aware ICMP and fragment rules: ICMP errors about the node's own flows pass while
echo is rate-limited; a fragment flood is dropped while the fragments of the node's own
large UDP answers pass (BPF_PROG_TEST_RUN in a lab namespace, and real traffic over the
lab's veth with the program attached)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from ftagent.bpf.loader import LoadOptions, XdpDatapath
from ftagent.datapath import Rule, RuleSpec
from lab.bpf_testrun import TEST_PIN_ROOT, XDP_DROP, XDP_PASS
from lab.netns import Lab

from .conftest import Prog

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
ROUTER4, ROUTER6 = "192.0.2.254", "2001:db8::fe"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.create() as made:
        yield made


def rule_of(prog: Prog, spec: RuleSpec) -> Rule:
    found: list[Rule] = [r for r in prog.maps.list_rules() if r.spec == spec]
    assert len(found) == 1, found
    return found[0]


def frame(pkt: Packet) -> bytes:
    return bytes(ETH / pkt)


def test_icmp_errors_about_own_flows_pass_echo_is_rate_limited(prog: Prog, lab: Lab) -> None:
    spec = RuleSpec("signature", proto=1, rate_pps=5, spare="sockets")
    prog.maps.add_rule(spec, ttl_s=60)
    me, peer = lab.victim_v4, lab.attacker_v4
    with (
        lab.inside(lab.victim_ns),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dns,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv,
    ):
        dns.connect((peer, 53))
        own_port = dns.getsockname()[1]
        srv.bind((me, 0))
        srv.listen(4)
        with socket.create_connection((me, srv.getsockname()[1])) as cli:
            conn, _ = srv.accept()
            conn.close()
            # Use up the echo bucket first: errors must pass whatever its state.
            _, d = prog.run(frame(IP(src="203.0.113.1", dst=me) / ICMP(type=8)), repeat=200)
            assert d.verdicts["rate_limited"] >= 190
            frag_needed = (
                IP(src=ROUTER4, dst=me)
                / ICMP(type=3, code=4, nexthopmtu=1280)
                / IP(src=me, dst=peer)
                / UDP(sport=own_port, dport=53)
            )
            retval, d = prog.run(frame(frag_needed), repeat=3)
            assert retval == XDP_PASS and d.verdicts == {"passed": 3}
            # Unreachable quoting the node's own TCP connection (the client side).
            local = cli.getsockname()
            unreach = (
                IP(src=ROUTER4, dst=me)
                / ICMP(type=3, code=1)
                / IP(src=me, dst=me)
                / TCP(sport=local[1], dport=srv.getsockname()[1])
            )
            retval, _ = prog.run(frame(unreach))
            assert retval == XDP_PASS
            # Errors quoting flows the node does not have: a closed port, a listener.
            for inner in (
                UDP(sport=own_port ^ 0x2222, dport=53),
                TCP(sport=srv.getsockname()[1], dport=40000),
            ):
                forged = (
                    IP(src=ROUTER4, dst=me) / ICMP(type=3, code=4) / IP(src=me, dst=peer) / inner
                )
                retval, _ = prog.run(frame(forged))
                assert retval == XDP_DROP, inner.summary()
            # A quoted header cut short never reaches a lookup.
            cut = frame(frag_needed)[: 14 + 20 + 8 + 20 + 2]
            retval, _ = prog.run(cut)
            assert retval == XDP_DROP
    assert rule_of(prog, spec).spared_packets == 4


def test_packet_too_big_about_own_connection_passes_v6(prog: Prog, lab: Lab) -> None:
    spec = RuleSpec("signature", proto=58, spare="sockets")
    prog.maps.add_rule(spec, ttl_s=60)
    me = lab.victim_v6
    with lab.inside(lab.victim_ns), socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as srv:
        srv.bind((me, 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        with socket.create_connection((me, port)) as cli:
            conn, _ = srv.accept()
            with conn:
                local = cli.getsockname()[1]
                ptb = (
                    IPv6(src=ROUTER6, dst=me)
                    / ICMPv6PacketTooBig(mtu=1280)
                    / IPv6(src=me, dst=me)
                    / TCP(sport=port, dport=local)
                )
                retval, _ = prog.run(frame(ptb))
                assert retval == XDP_PASS
                other = (
                    IPv6(src=ROUTER6, dst=me)
                    / ICMPv6PacketTooBig(mtu=1280)
                    / IPv6(src=me, dst="2001:db8::77")
                    / TCP(sport=port, dport=local)
                )
                retval, _ = prog.run(frame(other))
                assert retval == XDP_DROP
                retval, _ = prog.run(frame(IPv6(src=ROUTER6, dst=me) / ICMPv6EchoRequest()))
                assert retval == XDP_DROP
    rule = rule_of(prog, spec)
    assert (rule.spared_packets, rule.dropped_packets) == (1, 2)


@pytest.mark.parametrize("family", [4, 6])
def test_fragments_of_own_answer_pass_flood_fragments_drop(
    prog: Prog, lab: Lab, family: int
) -> None:
    spec = RuleSpec("signature", proto=17, fragments=True, spare="connected")
    prog.maps.add_rule(spec, ttl_s=60)
    me, peer = (lab.victim_v4, lab.attacker_v4) if family == 4 else (lab.victim_v6, lab.attacker_v6)

    def first(src: str, ident: int, dport: int) -> Packet:
        udp = UDP(sport=53, dport=dport, len=2008) / Raw(b"a" * 1000)
        if family == 4:
            return IP(src=src, dst=me, id=ident, flags="MF", proto=17) / udp
        return IPv6(src=src, dst=me) / IPv6ExtHdrFragment(id=ident, m=1, nh=17) / udp

    def later(src: str, ident: int) -> Packet:
        if family == 4:
            return IP(src=src, dst=me, id=ident, frag=126, proto=17) / Raw(b"b" * 1000)
        return (
            IPv6(src=src, dst=me)
            / IPv6ExtHdrFragment(id=ident, offset=126, nh=17)
            / Raw(b"b" * 1000)
        )

    stranger = "198.51.100.9" if family == 4 else "2001:db8::9"
    with (
        lab.inside(lab.victim_ns),
        socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_DGRAM) as dns,
    ):
        dns.connect((peer, 53))
        own = dns.getsockname()[1]
        assert prog.run(frame(first(peer, 4242, own)))[0] == XDP_PASS
        retval, d = prog.run(frame(later(peer, 4242)), repeat=2)
        assert retval == XDP_PASS and d.verdicts == {"passed": 2}
        # Flood: later fragments of datagrams never seen, and a first fragment to a
        # port with no connected socket (whose later fragments then drop too).
        retval, d = prog.run(frame(later(stranger, 4242)), repeat=5)
        assert retval == XDP_DROP and d.verdicts == {"drop_signature": 5}
        assert prog.run(frame(later(peer, 4243)))[0] == XDP_DROP
        assert prog.run(frame(first(stranger, 99, own ^ 0x3333)))[0] == XDP_DROP
        assert prog.run(frame(later(stranger, 99)))[0] == XDP_DROP
        # Whole datagrams are not fragments: the rule leaves them alone.
        whole = (IP if family == 4 else IPv6)(src=stranger, dst=me) / UDP(sport=1, dport=2)
        retval, d = prog.run(frame(whole))
        assert retval == XDP_PASS and d.verdicts == {"passed": 1}
    rule = rule_of(prog, spec)
    assert (rule.spared_packets, rule.dropped_packets) == (3, 8)


def test_real_fragmented_answer_arrives_under_a_fragment_rule(lab: Lab) -> None:
    """Over the veth with the program attached: the node's own query gets a 6 kB answer
    (five fragments) through, while spoofed later fragments are dropped."""
    with lab.inside(lab.victim_ns):
        dp = XdpDatapath.open(lab.victim_if, LoadOptions(pin_root=TEST_PIN_ROOT))
    try:
        spec = RuleSpec("signature", proto=17, fragments=True, spare="connected")
        dp.add_rule(spec, ttl_s=60)
        with lab.inside(lab.attacker_ns):
            resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        with resolver, raw:
            resolver.bind((lab.attacker_v4, 0))
            raw.bind((lab.attacker_if, 0))
            with lab.inside(lab.victim_ns):
                client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with client:
                client.settimeout(5)
                client.connect(resolver.getsockname())
                for n in range(3):
                    client.send(b"query %d" % n)
                    query, asker = resolver.recvfrom(100)
                    resolver.sendto(query + b"." * 6000, asker)
                    assert client.recv(10000) == query + b"." * 6000
            flood = bytes(
                Ether(src=lab.attacker_mac, dst=lab.victim_mac)
                / IP(src="198.51.100.77", dst=lab.victim_v4, id=7, frag=200, proto=17)
                / Raw(b"f" * 600)
            )
            for _ in range(200):
                raw.send(flood)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and dp.list_rules()[0].dropped_packets < 200:
            time.sleep(0.05)
        rule = dp.list_rules()[0]
        assert rule.dropped_packets == 200
        assert rule.spared_packets >= 3 * 5  # every fragment of the three answers
    finally:
        with lab.inside(lab.victim_ns):
            dp.close()

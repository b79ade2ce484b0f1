"""Known sources: the program learns the sources of established TCP connections and of
answers to connected UDP sockets; a rule with spare_known passes them while sources first
seen during the attack share the rule's rate (real sockets in a lab, BPF_PROG_TEST_RUN)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ftagent.bpf.rule_spec import RuleError
from ftagent.datapath import Rule, RuleSpec
from lab.bpf_testrun import XDP_PASS
from lab.netns import Lab

from .conftest import Prog

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
addr = ipaddress.ip_address


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.create() as made:
        yield made


def rule_of(prog: Prog, spec: RuleSpec) -> Rule:
    found: list[Rule] = [r for r in prog.maps.list_rules() if r.spec == spec]
    assert len(found) == 1, found
    return found[0]


def test_learns_sources_of_connections_and_answers_only(prog: Prog, lab: Lab) -> None:
    prog.maps.set_learn_rate(1)
    with lab.inside(lab.victim_ns):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with lab.inside(lab.attacker_ns):
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with srv, dns, cli:
        srv.bind((lab.victim_v4, 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        cli.connect((lab.victim_v4, port))  # a real handshake over the lab's veth
        conn, (peer, peer_port) = srv.accept()
        dns.connect((lab.attacker_v6, 53))
        with conn, lab.inside(lab.victim_ns):
            assert peer == lab.attacker_v4
            # Traffic that proves nothing: a SYN, a spoofed ACK, a datagram to a bound
            # port, an ACK to the listener.
            for pkt in (
                IP(src="198.51.100.1", dst=lab.victim_v4) / TCP(sport=1, dport=port, flags="S"),
                IP(src="198.51.100.2", dst=lab.victim_v4) / TCP(sport=2, dport=port, flags="A"),
                IPv6(src="2001:db8::3", dst=lab.victim_v6) / UDP(sport=53, dport=9),
            ):
                prog.run(bytes(ETH / pkt), repeat=3)
            assert prog.maps.known_sources() == []
            ack = IP(src=peer, dst=lab.victim_v4) / TCP(sport=peer_port, dport=port, flags="A")
            answer = (
                IPv6(src=lab.attacker_v6, dst=lab.victim_v6)
                / UDP(sport=53, dport=dns.getsockname()[1])
                / Raw(b"answer")
            )
            # A source's first packet enters the top-sources map; its later ones are
            # verified (learn rate 1: every one).
            assert prog.run(bytes(ETH / ack), repeat=2)[0] == XDP_PASS
            assert prog.run(bytes(ETH / answer), repeat=2)[0] == XDP_PASS
    assert sorted(map(str, prog.maps.known_sources())) == [lab.attacker_v4, lab.attacker_v6]


def test_learning_off_learns_nothing(prog: Prog, lab: Lab) -> None:
    with lab.inside(lab.victim_ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dns:
        dns.connect((lab.attacker_v4, 53))
        answer = IP(src=lab.attacker_v4, dst=lab.victim_v4) / UDP(
            sport=53, dport=dns.getsockname()[1]
        )
        prog.run(bytes(ETH / answer), repeat=10)
    assert prog.maps.known_sources() == []


def test_known_sources_pass_new_sources_share_the_rate(prog: Prog, lab: Lab) -> None:
    """A flood at the node's own UDP service: only the rule's rate is left for sources
    first seen during the attack, while known clients all pass."""
    spec = RuleSpec("signature", proto=17, dst_port=27015, rate_pps=50, spare_known=True)
    prog.maps.add_rule(spec, ttl_s=60)
    prog.maps.add_known_sources([addr("192.0.2.10"), addr("2001:db8::10")])
    game = IP(src="203.0.113.66", dst=lab.victim_v4) / UDP(sport=5, dport=27015) / Raw(b"x")
    known4 = IP(src="192.0.2.10", dst=lab.victim_v4) / UDP(sport=5, dport=27015) / Raw(b"x")
    known6 = IPv6(src="2001:db8::10", dst=lab.victim_v6) / UDP(sport=5, dport=27015)
    with lab.inside(lab.victim_ns):
        _, d = prog.run(bytes(ETH / game), repeat=2000)
        assert d.verdicts["rate_limited"] >= 2000 - 60
        _, d = prog.run(bytes(ETH / known4), repeat=300)
        assert d.verdicts == {"passed": 300}
        _, d = prog.run(bytes(ETH / known6), repeat=5)
        assert d.verdicts == {"passed": 5}
    rule = rule_of(prog, spec)
    assert rule.spared_packets == 305
    assert rule.spec.describe().endswith("rate<=50pps spare=known")


def test_known_sources_keep_ping_under_an_echo_rule(prog: Prog, lab: Lab) -> None:
    spec = RuleSpec("signature", proto=1, rate_pps=1, spare="sockets", spare_known=True)
    prog.maps.add_rule(spec, ttl_s=60)
    prog.maps.add_known_sources([addr("192.0.2.20")])
    with lab.inside(lab.victim_ns):
        _, d = prog.run(bytes(ETH / IP(src="203.0.113.1", dst=lab.victim_v4) / ICMP()), 500)
        assert d.verdicts["rate_limited"] >= 495
        _, d = prog.run(bytes(ETH / IP(src="192.0.2.20", dst=lab.victim_v4) / ICMP()), 50)
        assert d.verdicts == {"passed": 50}
    assert [r.spec for r in prog.maps.list_rules()] == [spec]


@pytest.mark.parametrize(("own_pps", "passed"), [(5, 2), (0, 1)])
def test_a_newcomer_that_sends_again_gets_a_second_chance(
    prog: Prog, lab: Lab, own_pps: int, passed: int
) -> None:
    """Second chance: a source first seen during the attack takes the shared budget with
    its first packet; when it sends again it passes on its own budget (newcomer_source_pps
    a second; 0: none) while the rule's repeat bucket (the rule's rate) has a token. Not
    spared: it is not known. One-off random sources only get the shared budget."""
    spec = RuleSpec("signature", proto=17, dst_port=9000, rate_pps=1, spare_known=True)
    prog.maps.set_newcomer_source_pps(own_pps)
    prog.maps.add_rule(spec, ttl_s=60)
    client = IP(src="203.0.113.7", dst=lab.victim_v4) / UDP(sport=5, dport=9000) / Raw(b"q")
    six = IPv6(src="2001:db8::77", dst=lab.victim_v6) / UDP(sport=5, dport=9000)
    with lab.inside(lab.victim_ns):
        # 1 a second in each bucket: the first packet takes the shared token, the second
        # the repeat token (with its own budget), the rest find both empty
        _, d = prog.run(bytes(ETH / client), repeat=20)
        assert d.verdicts == {"passed": passed, "rate_limited": 20 - passed}
        start, through = time.monotonic(), 0
        for i in range(100):  # a spoofed flood: every source new, none repeats
            spoofed = IP(src=f"198.51.100.{i + 1}", dst=lab.victim_v4) / UDP(dport=9000)
            through += prog.run(bytes(ETH / spoofed))[1].verdicts.get("passed", 0)
        # the shared bucket refills 1 token a second: nothing more gets through
        assert through <= int(time.monotonic() - start)
        assert prog.maps.remove_rule(spec)
        prog.maps.add_rule(spec, ttl_s=60)  # fresh buckets
        _, d = prog.run(bytes(ETH / six), repeat=10)
        assert d.verdicts == {"passed": passed, "rate_limited": 10 - passed}
    rule = rule_of(prog, spec)
    assert rule.spared_packets == 0 and rule.dropped_packets == 10 - passed


def test_learn_rate_must_be_a_power_of_two(prog: Prog) -> None:
    with pytest.raises(ValueError, match="power of two, got 48"):
        prog.maps.set_learn_rate(48)


def test_spare_known_needs_a_signature_rule(prog: Prog) -> None:
    with pytest.raises(RuleError, match="spare_known needs a signature rule"):
        prog.maps.add_rule(
            RuleSpec("prefix", ipaddress.ip_network("192.0.2.0/24"), spare_known=True), 5
        )

"""Socket-aware rules (RuleSpec.spare): the program asks the kernel's socket tables before
it drops, so packets of the node's real connections and answers to its own queries pass.

Real sockets in a lab namespace; frames through BPF_PROG_TEST_RUN run from inside that
namespace (a test run looks sockets up in the namespace of the calling thread).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ftagent.bpf.rule_spec import RuleError
from ftagent.datapath import Rule, RuleSpec
from lab.bpf_testrun import XDP_DROP, XDP_PASS
from lab.netns import Lab

from .conftest import Prog

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
ACK_ONLY = RuleSpec("signature", proto=6, tcp_flags=0x10, tcp_flags_mask=0x17, spare="sockets")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.create() as made:
        yield made


def rule_of(prog: Prog, spec: RuleSpec) -> Rule:
    found: list[Rule] = [r for r in prog.maps.list_rules() if r.spec == spec]
    assert len(found) == 1, found
    return found[0]


def ip_layer(src: str, dst: str) -> IP | IPv6:
    return (
        IP(src=src, dst=dst) if ipaddress.ip_address(src).version == 4 else IPv6(src=src, dst=dst)
    )


def tcp_frame(
    src: tuple[str, int], dst: tuple[str, int], flags: str, seq: int = 1000, ack: int = 1
) -> bytes:
    return bytes(
        ETH
        / ip_layer(src[0], dst[0])
        / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
    )


def udp_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes = b"answer") -> bytes:
    return bytes(ETH / ip_layer(src[0], dst[0]) / UDP(sport=src[1], dport=dst[1]) / Raw(payload))


def free_port(family: int, kind: int) -> int:
    with socket.socket(family, kind) as s:
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def test_ack_of_established_connection_passes_spoofed_ack_drops(
    prog: Prog, lab: Lab, family: int
) -> None:
    host, stranger = (
        (lab.victim_v4, "192.0.2.9") if family == socket.AF_INET else (lab.victim_v6, "2001:db8::9")
    )
    prog.maps.add_rule(ACK_ONLY, ttl_s=60)
    with lab.inside(lab.victim_ns), socket.socket(family, socket.SOCK_STREAM) as srv:
        srv.bind((host, 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        with socket.create_connection((host, port)) as cli:
            conn, _peer = srv.accept()
            with conn:
                client = (host, cli.getsockname()[1])
                # The client's next ACK as the server's socket would receive it.
                real = tcp_frame(client, (host, port), "A")
                retval, d = prog.run(real, repeat=3)
                assert retval == XDP_PASS and d.verdicts == {"passed": 3}
                # Same addresses, a port pair no connection has: spoofed.
                spoofed = tcp_frame((host, client[1] ^ 0x5A5A), (host, port), "A")
                retval, d = prog.run(spoofed, repeat=2)
                assert retval == XDP_DROP and d.verdicts == {"drop_signature": 2}
                # An ACK to the listener that carries no valid SYN cookie.
                retval, _ = prog.run(tcp_frame((stranger, 4444), (host, port), "A"))
                assert retval == XDP_DROP
    rule = rule_of(prog, ACK_ONLY)
    assert (rule.spared_packets, rule.dropped_packets) == (3, 3)
    assert rule.spared_bytes == 3 * len(real)


def test_rst_and_fin_floods_spare_only_real_connections(prog: Prog, lab: Lab) -> None:
    spec = RuleSpec("signature", proto=6, tcp_flags=0x00, tcp_flags_mask=0x02, spare="sockets")
    host = lab.victim_v4
    prog.maps.add_rule(spec, ttl_s=60)
    with lab.inside(lab.victim_ns), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind((host, 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        with socket.create_connection((host, port)) as cli:
            conn, _ = srv.accept()
            with conn:
                client = (host, cli.getsockname()[1])
                for flags in ("R", "FA", "PA"):
                    retval, _ = prog.run(tcp_frame(client, (host, port), flags))
                    assert retval == XDP_PASS, flags
                    retval, _ = prog.run(tcp_frame(("198.51.100.1", 1), (host, port), flags))
                    assert retval == XDP_DROP, flags
                    # A port with no socket at all: dropped too.
                    retval, _ = prog.run(tcp_frame(client, (host, 1), flags))
                    assert retval == XDP_DROP, flags
    rule = rule_of(prog, spec)
    assert (rule.spared_packets, rule.dropped_packets) == (3, 6)


def test_syn_to_listener_passes_syn_to_closed_port_drops(prog: Prog, lab: Lab) -> None:
    spec = RuleSpec("signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12, spare="sockets")
    host = lab.victim_v6
    prog.maps.add_rule(spec, ttl_s=60)
    with lab.inside(lab.victim_ns):
        closed = free_port(socket.AF_INET6, socket.SOCK_STREAM)
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as srv:
            srv.bind((host, 0))
            srv.listen(8)
            port = srv.getsockname()[1]
            retval, d = prog.run(tcp_frame(("2001:db8::66", 5555), (host, port), "S"), repeat=4)
            assert retval == XDP_PASS and d.verdicts == {"passed": 4}
            retval, d = prog.run(tcp_frame(("2001:db8::66", 5555), (host, closed), "S"), repeat=5)
            assert retval == XDP_DROP and d.verdicts == {"drop_signature": 5}
    rule = rule_of(prog, spec)
    assert (rule.spared_packets, rule.dropped_packets) == (4, 5)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def test_dns_answer_to_own_query_passes_unsolicited_drops(
    prog: Prog, lab: Lab, family: int
) -> None:
    host, resolver = (
        (lab.victim_v4, lab.attacker_v4)
        if family == socket.AF_INET
        else (lab.victim_v6, lab.attacker_v6)
    )
    spec = RuleSpec("signature", proto=17, src_port=53, spare="connected")
    prog.maps.add_rule(spec, ttl_s=60)
    # The node's resolver client: a connected UDP socket, as glibc uses; and a UDP
    # service on the node (bound, not connected).
    with (
        lab.inside(lab.victim_ns),
        socket.socket(family, socket.SOCK_DGRAM) as client,
        socket.socket(family, socket.SOCK_DGRAM) as server,
    ):
        client.connect((resolver, 53))
        own = (host, client.getsockname()[1])
        server.bind((host, 0))
        answer = udp_frame((resolver, 53), own)
        retval, d = prog.run(answer, repeat=2)
        assert retval == XDP_PASS and d.verdicts == {"passed": 2}
        other = "203.0.113.53" if family == socket.AF_INET else "2001:db8::53"
        # Reflected answers: to a closed port, from a server the node never asked,
        # to the node's UDP service (bound, not connected).
        for src, dst in (
            ((resolver, 53), (host, own[1] ^ 0x1111)),
            ((other, 53), own),
            ((resolver, 53), (host, server.getsockname()[1])),
        ):
            retval, d = prog.run(udp_frame(src, dst))
            assert retval == XDP_DROP and d.verdicts == {"drop_signature": 1}, (src, dst)
    rule = rule_of(prog, spec)
    assert (rule.spared_packets, rule.dropped_packets) == (2, 3)


def test_udp_sockets_mode_spares_bound_services_drops_closed_ports(prog: Prog, lab: Lab) -> None:
    host = lab.victim_v4
    spec = RuleSpec("signature", proto=17, dst=ipaddress.ip_address(host), spare="sockets")
    prog.maps.add_rule(spec, ttl_s=60)
    with lab.inside(lab.victim_ns):
        closed = free_port(socket.AF_INET, socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:
            service.bind(("0.0.0.0", 0))
            port = service.getsockname()[1]
            retval, _ = prog.run(udp_frame(("198.51.100.4", 999), (host, port)))
            assert retval == XDP_PASS
            retval, _ = prog.run(udp_frame(("198.51.100.4", 999), (host, closed)))
            assert retval == XDP_DROP
    rule = rule_of(prog, spec)
    assert (rule.spared_packets, rule.dropped_packets) == (1, 1)


def test_rate_limit_applies_to_what_no_socket_wants(prog: Prog, lab: Lab) -> None:
    host = lab.victim_v4
    spec = RuleSpec("signature", proto=17, src_port=123, rate_pps=10, spare="connected")
    prog.maps.add_rule(spec, ttl_s=60)
    with lab.inside(lab.victim_ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ntp:
        ntp.connect((lab.attacker_v4, 123))
        own = udp_frame((lab.attacker_v4, 123), (host, ntp.getsockname()[1]))
        stray = udp_frame(("203.0.113.5", 123), (host, 40404))
        _, d = prog.run(stray, repeat=1000)
        assert d.verdicts["rate_limited"] >= 980  # the bucket held at most 10 tokens
        _, d = prog.run(own, repeat=500)  # the bucket is empty; answers still pass
        assert d.verdicts == {"passed": 500}
    assert rule_of(prog, spec).spared_packets == 500


def test_truncated_segment_never_reaches_a_lookup(prog: Prog, lab: Lab) -> None:
    spec = RuleSpec("signature", proto=6, spare="sockets")
    prog.maps.add_rule(spec, ttl_s=60)
    frame = tcp_frame(("192.0.2.1", 80), (lab.victim_v4, 80), "A")
    with lab.inside(lab.victim_ns):
        for cut in range(14 + 20, len(frame)):  # IP header whole, TCP header cut
            retval, d = prog.run(frame[:cut])
            assert retval == XDP_DROP and d.verdicts == {"drop_signature": 1}, cut
    assert rule_of(prog, spec).spared_packets == 0


def test_spare_round_trips_and_renews(prog: Prog) -> None:
    prog.maps.add_rule(ACK_ONLY, ttl_s=5)
    assert [r.spec for r in prog.maps.list_rules()] == [ACK_ONLY]
    assert ACK_ONLY.describe().endswith("spare=sockets")
    plain = RuleSpec("signature", proto=6, tcp_flags=0x10, tcp_flags_mask=0x17)
    prog.maps.add_rule(plain, ttl_s=5)  # same match: renews the slot, spare now off
    assert [r.spec for r in prog.maps.list_rules()] == [plain]


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        (
            RuleSpec("src", ipaddress.ip_network("192.0.2.1/32"), spare="sockets"),
            "needs a signature rule",
        ),
        (RuleSpec("signature", proto=6, spare="connected"), "spare=connected judges"),
        (RuleSpec("signature", proto=47, spare="sockets"), "signature proto"),
        (RuleSpec("signature", proto=6, spare="all"), "spare must be one of"),  # type: ignore[arg-type]
    ],
    ids=["src", "connected-tcp", "gre", "unknown-mode"],
)
def test_bad_spare_is_refused_by_name(prog: Prog, spec: RuleSpec, complaint: str) -> None:
    with pytest.raises(RuleError, match=complaint):
        prog.maps.add_rule(spec, ttl_s=5)
    assert prog.maps.list_rules() == []

"""An incident's response with the socket guard on, against the real XDP program and real
sockets in a lab namespace: what a rule spares is a leak only when it may be the attack.

The same volume of spared packets, fed through BPF_PROG_TEST_RUN each window: SYNs handed
to a listener (the kernel's SYN cookies' job) are not a leak, so nothing widens; UDP
datagrams to a bound service port under a rule that spares any socket may be a spoofed
flood, so the leak check widens, and the rule is tightened in place (connected sockets
and known sources only, a rate for the rest)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from ftagent.config import decode
from ftagent.detect.baseline import Baseline
from ftagent.detect.detector import Transition
from ftagent.detect.rates import Window
from ftagent.detect.reference import Reference
from ftagent.evidence.sources import SourceWatcher
from ftagent.mitigate.guard import SocketGuard, udp_port_bound
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.protection import Protection
from ftagent.respond.journal import IncidentJournal
from ftagent.respond.response import IncidentResponse, Tools
from ftagent.respond.shield import ShieldedSink
from lab.agent_harness import RecordingSink
from lab.netns import Lab
from tests.unit.agent.synth import window

from .conftest import XdpProgram
from .test_response import at

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

PER_WINDOW = 5_000  # spared packets fed per 0.1 s window: 50 kpps, the window's claimed rate
CONFIG = """
[agent]
state_dir = "{state}"
[detection]
floors = {{ pps = 20000, bps = 1e12, udp_pps = 20000, syn_pps = 2000 }}
[mitigation]
rule_ttl_s = 300
verify_windows = 3
"""


@dataclass
class Kernel:
    lab: Lab
    maps: Any
    fd: int


@pytest.fixture(scope="module")
def kernel(xdp_program: XdpProgram) -> Iterator[Kernel]:
    with Lab.create() as lab:
        yield Kernel(lab, xdp_program.maps, xdp_program.fd)


def open_response(k: Kernel, tmp: Path, first: Window) -> tuple[IncidentResponse, RecordingSink]:
    cfg = decode(CONFIG.format(state=tmp))
    sink = RecordingSink()
    lock = threading.RLock()
    protection = Protection([], [], [], [])
    tools = Tools(
        cfg, k.maps, lock, Mitigator(k.maps, cfg.mitigation, protection.protected),
        protection, Reference(cfg, Baseline(cfg.baseline), time.time),
        SourceWatcher(k.maps, 20, 60.0), ShieldedSink(sink), IncidentJournal(tmp / "j.json"),
        time.time, SocketGuard(True, "on", udp_port_bound),
    )  # fmt: skip
    tr = Transition("confirmed", "burst", {"pps": 10.0})
    with k.lab.inside(k.lab.victim_ns):  # the planner asks this namespace's socket tables
        r = IncidentResponse(tools, tr, [first], [])
    return r, sink


def feed(k: Kernel, r: IncidentResponse, flood: Window, packet: Packet, windows: int) -> None:
    """Each window: PER_WINDOW packets through the program (in the victim namespace, where
    the sockets are), then the window, as the loop would see it."""
    from lab.bpf_testrun import test_run

    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / packet)
    for i in range(1, windows + 1):
        with k.lab.inside(k.lab.victim_ns):
            test_run(k.fd, frame, PER_WINDOW)
            r.window(at(flood, i), [], [])


def test_syns_spared_to_a_listener_are_not_a_leak(kernel: Kernel, tmp_path: Path) -> None:
    with kernel.lab.inside(kernel.lab.victim_ns):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener:
        listener.bind((kernel.lab.victim_v4, 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        flood = window(tcp=50_000, syn=50_000)
        r, sink = open_response(kernel, tmp_path, at(flood, 0))
        try:
            syn = IP(src="198.51.100.7", dst=kernel.lab.victim_v4) / TCP(
                sport=1234, dport=port, flags="S"
            )
            feed(kernel, r, flood, syn, 8)
            (rule,) = kernel.maps.list_rules()
            assert rule.spec.spare == "sockets" and rule.spec.tcp_flags == 0x02
            assert rule.spared_packets == 8 * PER_WINDOW and rule.dropped_packets == 0
            actions = [m.action for m in r.incident.history]
            assert "widened" not in actions and "widen_failed" not in actions, actions
        finally:
            r.resolve("agent_stopped", at(flood, 9))
            kernel.maps.remove_rule(rule.spec)
    assert sink.of("resolved")[0].data.figures.rules[0].spared_packets == 8 * PER_WINDOW


def test_a_flood_through_a_udp_guard_leaks_and_the_guard_is_tightened(
    kernel: Kernel, tmp_path: Path
) -> None:
    with kernel.lab.inside(kernel.lab.victim_ns):
        service = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with service:
        service.bind((kernel.lab.victim_v4, 0))
        port = service.getsockname()[1]
        flood = window(udp=50_000)
        r, _ = open_response(kernel, tmp_path, at(flood, 0))
        try:
            (first,) = kernel.maps.list_rules()
            assert first.spec.spare == "sockets" and first.spec.proto == 17
            spoofed = (
                IP(src="198.51.100.7", dst=kernel.lab.victim_v4)
                / UDP(sport=1234, dport=port)
                / Raw(b"x" * 60)
            )
            feed(kernel, r, flood, spoofed, 8)
            (rule,) = kernel.maps.list_rules()  # replaced in its slot, not added
            assert (rule.spec.spare, rule.spec.spare_known) == ("connected", True)
            assert rule.spec.rate_pps is not None and rule.spec.same_match(first.spec)
            assert rule.dropped_packets > 0  # the spoofed datagrams drop now
            assert "widened" in [m.action for m in r.incident.history]
            assert r.incident.rules == [rule.spec]
        finally:
            r.resolve("agent_stopped", at(flood, 9))
            for left in kernel.maps.list_rules():
                kernel.maps.remove_rule(left.spec)

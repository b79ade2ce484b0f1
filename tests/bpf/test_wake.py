"""The kernel's wake-up (ftshared.h, struct ft_wake) through BPF_PROG_TEST_RUN: one event
per wake slot per CPU once a CPU's count in the slot reaches wake_slot_packets, none below
it and none while it is off; a thread blocked on the buffer is woken by it."""

from __future__ import annotations

import threading
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ftagent.bpf.wake import WAKE_SLOT_NS
from ftagent.datapath import Wake
from lab.bpf_testrun import XDP_PASS, test_run

from .conftest import Prog

pytestmark = [pytest.mark.kernel]

FRAME = bytes(
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    / IP(src="198.51.100.7", dst="203.0.113.9")
    / UDP(sport=40000, dport=53)
    / Raw(b"x" * 64)
)


def set_count(prog: Prog, n: int) -> None:
    prog.maps.tables.update_config(lambda c: setattr(c, "wake_slot_packets", n))


def fresh_slot() -> None:
    """Past the current wake slot: no packet of an earlier test counts in the next one."""
    time.sleep(2 * WAKE_SLOT_NS / 1e9)


def run(prog: Prog, repeat: int) -> None:
    assert test_run(prog.fd, FRAME, repeat).retval == XDP_PASS


def check_wakes(wakes: list[Wake], count: int) -> None:
    """Each wake names a distinct slot, was sent inside it, at the configured count."""
    assert len({w.slot_ns for w in wakes}) == len(wakes)
    for w in wakes:
        assert w.slot_ns % WAKE_SLOT_NS == 0
        assert w.slot_ns <= w.at_ns < w.slot_ns + WAKE_SLOT_NS
        assert w.packets == count


@pytest.fixture(params=["ring", "perf"])
def any_prog(request: pytest.FixtureRequest) -> Prog:
    """The ring-buffer build and the perf-buffer one (kernels without ring buffers)."""
    p: Prog = request.getfixturevalue("prog" if request.param == "ring" else "perf_prog")
    p.reset()
    return p


def test_off_sends_nothing(any_prog: Prog) -> None:
    fresh_slot()
    run(any_prog, 5000)
    assert any_prog.maps.wait_wake(0) == []


def test_below_the_count_sends_nothing(any_prog: Prog) -> None:
    set_count(any_prog, 1000)
    fresh_slot()
    run(any_prog, 500)  # a slot boundary inside splits them: still under 1000 in each
    assert any_prog.maps.wait_wake(0) == []


def test_once_per_slot_when_reached(any_prog: Prog) -> None:
    set_count(any_prog, 100)
    fresh_slot()
    run(any_prog, 1000)  # ten times the count, in one slot (two if a boundary falls inside)
    wakes = any_prog.maps.wait_wake(0)
    assert 1 <= len(wakes) <= 2
    check_wakes(wakes, 100)
    assert len({w.cpu for w in wakes}) == 1  # test runs stay on one CPU
    # Later slots that reach the count send again, each once.
    fresh_slot()
    run(any_prog, 1000)
    again = any_prog.maps.wait_wake(0)
    assert 1 <= len(again) <= 2
    check_wakes(wakes + again, 100)


def test_a_many_slot_run_wakes_once_per_slot(prog: Prog) -> None:
    set_count(prog, 50)
    fresh_slot()
    started = time.monotonic_ns()
    run(prog, 300_000)  # tens of milliseconds: several slots, each far past the count
    ended = time.monotonic_ns()
    wakes = prog.maps.wait_wake(0)
    check_wakes(wakes, 50)
    spanned = (ended - started) // WAKE_SLOT_NS + 2
    assert 2 <= len(wakes) <= spanned


def test_the_rate_sets_a_per_cpu_count(prog: Prog) -> None:
    from ftagent.bpf import libbpf
    from ftagent.bpf.wake import slot_packets

    prog.maps.set_wake_pps(50_000)
    assert prog.maps.wakes.slot_packets() == slot_packets(50_000, libbpf.num_possible_cpus())
    assert prog.maps.wakes.slot_packets() > 0
    prog.maps.set_wake_pps(0)
    assert prog.maps.wakes.slot_packets() == 0


def test_a_blocked_waiter_is_woken(prog: Prog) -> None:
    set_count(prog, 10)
    fresh_slot()
    got: list[Wake] = []
    waiting = threading.Event()

    def waiter() -> None:
        waiting.set()
        got.extend(prog.maps.wait_wake(30.0))

    t = threading.Thread(target=waiter)
    t.start()
    waiting.wait()
    time.sleep(0.05)  # into epoll
    run(prog, 100)
    t.join(60)
    assert not t.is_alive()
    assert len(got) >= 1  # a timeout would have returned nothing
    check_wakes(got, 10)

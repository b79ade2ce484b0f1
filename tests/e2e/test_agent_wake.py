"""The kernel's wake-up confirms a flood between two polls: with a one-second poll, a
flood far above threshold opens its incident in a window the wake-up started, before the
next tick's window; traffic under the thresholds wakes nothing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from lab.agent_harness import RunningAgent, lab_config
from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]



@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    from lab.netns import Lab

    state = tmp_path_factory.mktemp("agent-state")
    with Lab.create() as lab:
        cfg = lab_config(lab.victim_if, state)
        cfg.agent.poll_interval_ms = 1000  # a tick is far away: only a wake-up is quick
        cfg.detection.kernel_wake = True  # off by default
        ra = RunningAgent(lab, cfg).start()
        try:
            ra.wait_baseline(60)
            yield ra
        finally:
            ra.stop()
    assert ra.error is None, f"agent loop failed: {ra.error!r}"


def test_flood_confirmed_by_a_wake_up_before_the_next_tick(running: RunningAgent) -> None:
    from lab.trafgen import run_flood

    ra = running
    assert ra.agent is not None and ra.agent.waker is not None
    ra.wait_for(ra.quiet, 20, "quiet before the flood")
    t0 = time.monotonic_ns()
    run_flood(ra.lab, "udp_flood", packets=100_000, pps=None, timeout_s=15)
    ra.wait_for(lambda: bool(ra.sink.of("opened", t0)), 15, "the incident")
    ra.wait_for(lambda: any(w.end_ns > t0 and w.trigger == "tick" and w.attack
                            for w in list(ra.windows)), 15, "a tick window after it")
    opened = ra.sink.of("opened", t0)[0]
    windows = [w for w in list(ra.windows) if w.end_ns > t0]
    first_attack = next(i for i, w in enumerate(windows) if w.attack)
    confirming = windows[first_attack]
    # The window that confirmed was started by the kernel, not by the poll ...
    assert confirming.trigger == "wake", windows[: first_attack + 1]
    assert opened.data.figures.evidence.get("over_threshold")
    assert ra.agent.incidents_by_family["udp_flood"] >= 1
    # ... and the incident was reported before the next tick's window ended.
    next_tick = next(w for w in windows[first_attack + 1:] if w.trigger == "tick")
    assert opened.at_ns < next_tick.end_ns
    # No wake-ups are asked for while the attack lasts (the kernel's count is off).
    assert ra.agent.waker.count >= 1
    assert ra.dp.maps.wakes.slot_packets() == 0
    ra.wait_for(lambda: bool(ra.sink.of("resolved", t0)), 30, "the incident to resolve")
    # After it, wake-ups are asked for again.
    ra.wait_for(lambda: ra.dp.maps.wakes.slot_packets() > 0, 10, "wake-ups re-armed")


def test_traffic_under_the_thresholds_wakes_nothing(running: RunningAgent) -> None:
    from lab.trafgen import run_flood

    ra = running
    assert ra.agent is not None and ra.agent.waker is not None
    ra.wait_for(ra.quiet, 30, "quiet")
    ra.wait_for(lambda: ra.dp.maps.wakes.slot_packets() > 0, 10, "wake-ups armed")
    before = ra.agent.waker.count
    t0 = time.monotonic_ns()
    run_flood(ra.lab, "udp_flood", packets=2_000, pps=1_000, timeout_s=15)  # 1 kpps
    time.sleep(1.5)
    assert ra.sink.of("opened", t0) == []
    assert ra.agent.waker.count == before
    assert all(w.trigger == "tick" for w in list(ra.windows) if w.end_ns > t0)

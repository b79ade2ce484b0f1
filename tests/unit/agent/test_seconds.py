"""One-second points: the second's windows averaged into the contract's MetricPoint; a
quiet second is learned by the baseline, a hot or attacked one is not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ftagent.baseline import Baseline
from ftagent.config import decode
from ftagent.seconds import Seconds, metric_point

from .synth import window

CFG = decode("[baseline]\nmin_samples = 2\nwindow_s = 60\n").baseline


def test_a_point_has_protocol_and_flag_rates_and_no_baseline_while_learning() -> None:
    ws = [window(tcp=600, udp=300, icmp=50, other=50, syn=20, ack=500, rst=10, fragment=10,
                 dropped=50)] * 10  # fmt: skip
    p = metric_point(ws, 1_700_000_000.4, True, Baseline(CFG))
    assert (p.ts, p.pps, p.bps, p.attack) == (1_700_000_000.4, 1000.0, 800_000.0, True)
    assert p.protocols == {"tcp": 600.0, "udp": 300.0, "icmp": 50.0, "fragment": 10.0,
                           "other": 50.0}  # fmt: skip
    assert p.tcp_flags == {"syn": 20.0, "ack": 500.0, "rst": 10.0}
    assert p.dropped_pps == 50.0
    assert (p.baseline_avg_pps, p.baseline_p95_pps, p.baseline_p99_pps) == (None, None, None)


def test_quiet_seconds_are_learned_and_hot_ones_are_not(tmp_path: Path) -> None:
    now = [0.0]
    baseline = Baseline(CFG)
    s = Seconds(baseline, tmp_path / "baseline.json", 3600.0, lambda: 1_700_000_000.0,
                clock=lambda: now[0])  # fmt: skip
    w = window(udp=1000)

    def second(hot: bool, attack: bool) -> None:
        for i in range(10):
            now[0] = round(now[0] + 0.1, 6)
            point = s.add(dataclasses.replace(w), hot and i == 3, attack)
            assert (point is not None) == (i == 9)

    second(False, False)
    second(False, False)
    assert s.learned and baseline.samples == 2 and baseline.ready
    second(True, False)
    assert not s.learned and baseline.samples == 2
    second(False, True)
    assert not s.learned and baseline.samples == 2
    point = metric_point([w], 1.0, False, baseline)
    assert point.baseline_p99_pps == pytest.approx(1000.0)

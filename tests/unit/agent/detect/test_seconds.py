"""One-second points: the second's windows averaged into the contract's MetricPoint, cut
on wall-clock second boundaries; a quiet second is learned by the baseline, a hot or
attacked one is not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ftagent.config import decode
from ftagent.detect.baseline import Baseline
from ftagent.detect.seconds import Seconds, metric_point
from tests.unit.agent.synth import window

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
    assert (p.udp_ports, p.ipv6_pps) == ({"other": 300.0}, 0.0)


def test_a_point_has_udp_source_ports_non_zero_only_and_the_ipv6_rate() -> None:
    # Half the second with DNS answers, half without: time-weighted over the windows.
    dns = window(udp=1000, udp_sport={53: 900, 123: 0.4}, ipv6_share=0.25)
    quiet = window(udp=100)
    p = metric_point([dns] * 5 + [quiet] * 5, 1_700_000_000.0, False, Baseline(CFG))
    # 123 carried 0.04 packets per window (rounded away): non-zero ports only
    assert p.udp_ports == {"53": 450.0, "other": 100.0}
    assert p.ipv6_pps == 125.0


def test_quiet_seconds_are_learned_and_hot_ones_are_not(tmp_path: Path) -> None:
    wall = [1_700_000_000.0]
    baseline = Baseline(CFG)
    s = Seconds(baseline, tmp_path / "baseline.json", 3600.0, lambda: wall[0])
    w = window(udp=1000)

    def second(hot: bool, attack: bool) -> list[float]:
        made = []
        for i in range(10):
            wall[0] = round(wall[0] + 0.1, 6)
            point = s.add(dataclasses.replace(w), hot and i == 3, attack)
            if point is not None:
                made.append(point.ts)
        return made

    assert second(False, False) == []  # the first second closes with the next one's window
    assert second(False, False) == [1_700_000_000.0]
    assert s.learned and baseline.samples == 1
    assert second(True, False) == [1_700_000_001.0]
    assert s.learned and baseline.samples == 2 and baseline.ready
    assert second(False, True) == [1_700_000_002.0]  # the hot second
    assert not s.learned and baseline.samples == 2
    second(False, False)  # closes the attacked second
    assert not s.learned and baseline.samples == 2
    point = metric_point([w], 1.0, False, baseline)
    assert point.baseline_p99_pps == pytest.approx(1000.0)


def test_seconds_are_cut_on_wall_clock_boundaries_whatever_the_start(tmp_path: Path) -> None:
    """Nodes started at different moments cut the same real seconds: a window belongs to
    the second its middle falls in, the point's ts is that second's start."""
    wall = [1_700_000_000.37]
    s = Seconds(Baseline(CFG), tmp_path / "baseline.json", 3600.0, lambda: wall[0])
    made = []
    for _ in range(25):
        wall[0] = round(wall[0] + 0.1, 6)
        point = s.add(window(udp=1000), False, False)
        if point is not None:
            made.append((point.ts, wall[0]))
    # second ...000 (partly seen: the agent started inside it), then ...001 in full
    assert [ts for ts, _ in made] == [1_700_000_000.0, 1_700_000_001.0]
    # each made by the first window whose middle is past the boundary
    assert [at for _, at in made] == [1_700_000_001.07, 1_700_000_002.07]


def test_a_wall_clock_stepped_back_never_makes_a_point_go_back(tmp_path: Path) -> None:
    wall = [1_700_000_000.05]
    s = Seconds(Baseline(CFG), tmp_path / "baseline.json", 3600.0, lambda: wall[0])
    made = []
    for t in (0.15, 0.95, 1.15, 0.55, 0.65, 2.15):
        wall[0] = 1_700_000_000.0 + t
        point = s.add(window(udp=1000), False, False)
        if point is not None:
            made.append(point.ts)
    assert made == [1_700_000_000.0, 1_700_000_001.0]

"""Summarising the victim's rx samples into an achieved rate (pure arithmetic)."""

from __future__ import annotations

import pytest

from lab.rxrate import achieved_rate


def samples(counts_per_window: list[int], window_s: float = 0.1) -> list[tuple[float, int]]:
    out, total = [(0.0, 1000)], 1000
    for i, n in enumerate(counts_per_window, start=1):
        total += n
        out.append((i * window_s, total))
    return out


def test_steady_flood_mean_leaves_out_the_partial_edge_windows() -> None:
    # idle, a partly filled first window, 5 full ones at 2,000 per 100 ms, a partial last one
    rate = achieved_rate(samples([0, 0, 700, 2000, 2000, 2000, 2000, 2000, 300, 0]))
    assert rate.packets == 700 + 5 * 2000 + 300
    assert rate.mean_pps == pytest.approx(20_000)
    assert rate.max_window_pps == pytest.approx(20_000)
    assert rate.burstiness == pytest.approx(1.0)
    assert rate.windows_pps[0] == pytest.approx(7_000)


def test_burst_pacing_shows_as_a_busy_window_over_the_mean() -> None:
    # trafgen -b: each second's packets in ~0.2 s, then nothing
    second = [5000, 5000, 0, 0, 0, 0, 0, 0, 0, 0]
    rate = achieved_rate(samples([0, *second, *second, *second, 0]))
    assert rate.mean_pps == pytest.approx(10_000)  # 20,000 packets in the 2 s between edges
    assert rate.max_window_pps == pytest.approx(50_000)
    assert rate.burstiness > 4


def test_windows_of_uneven_length_give_rates_not_counts() -> None:
    # a late sample (loaded machine) makes a 200 ms window with twice the packets
    s = [(0.0, 0), (0.1, 100), (0.2, 200), (0.4, 400), (0.5, 500), (0.6, 600)]
    rate = achieved_rate(s)
    assert rate.windows_pps == pytest.approx((1000, 1000, 1000, 1000, 1000))
    assert rate.mean_pps == pytest.approx(1000)


def test_no_packets_is_an_empty_rate() -> None:
    rate = achieved_rate(samples([0, 0, 0]))
    assert (rate.packets, rate.mean_pps, rate.max_window_pps, rate.burstiness) == (0, 0, 0, 0)
    assert achieved_rate([]).windows_pps == ()


def test_light_background_before_and_after_is_not_the_flood() -> None:
    # 200 pps of benign traffic all along (20 per window), a 20,000 pps flood in between
    rate = achieved_rate(samples([20] * 5 + [700] + [2000] * 6 + [300] + [20] * 10))
    assert rate.mean_pps == pytest.approx(20_000)
    assert len(rate.windows_pps) == 8
    assert rate.packets == 20 + 700 + 6 * 2000 + 300 + 20  # with one window either side


def test_a_flood_ending_just_after_a_window_keeps_its_last_packets() -> None:
    rate = achieved_rate(samples([0, 1000, 1000, 1000, 15, 0]))
    assert rate.packets == 3015 and rate.mean_pps == pytest.approx(10_000)

"""The collateral flood runner's share of the attack dropped, from 100 ms samples of the
attacker's frames into the bridge and of those that passed XDP (pure arithmetic)."""

from __future__ import annotations

import pytest

from lab.collateral_flood import attack_windows


def samples(windows: list[tuple[int, int]], window_s: float = 0.1) -> list[tuple[float, int, int]]:
    """(arrived, passed) per window -> cumulative (time, arrived, passed) samples."""
    out, arrived, passed = [(0.0, 500, 20)], 500, 20
    for i, (a, p) in enumerate(windows, start=1):
        arrived, passed = arrived + a, passed + p
        out.append((i * window_s, arrived, passed))
    return out


def test_counts_from_the_first_full_window_after_the_rule() -> None:
    # idle, a partial first window, two full windows passing everything, the rule arrives
    # at 0.45 s (inside a window that is left out), then full windows dropping 99 %, a
    # partial last window (left out)
    got = attack_windows(
        samples(
            [
                (0, 0),
                (1000, 1000),
                (4000, 4000),
                (4000, 4000),
                (4000, 2000),
                (4000, 40),
                (4000, 40),
                (4000, 40),
                (900, 9),
                (0, 0),
            ]
        ),
        since=0.45,
    )
    assert got.dropped == pytest.approx(0.99)
    # the windows judged: the three full ones from 0.5 s on
    assert (got.arrived, got.passed) == (12_000, 120)
    assert got.start == pytest.approx(0.1)  # the first window with the flood in it
    # the rate over the full windows only (not the partial first and last ones)
    assert got.mean_pps == pytest.approx(40_000)


def test_without_a_rule_the_whole_flood_but_its_edge_windows() -> None:
    got = attack_windows(
        samples([(0, 0), (1000, 1000), (4000, 4000), (4000, 3000), (4000, 4000), (1000, 0)]),
        since=None,
    )
    assert got.dropped == pytest.approx(1000 / 12000)


def test_a_rule_after_the_flood_or_no_flood_gives_no_share() -> None:
    flood = samples([(4000, 4000), (4000, 4000), (4000, 4000)])
    assert attack_windows(flood, since=5.0).dropped is None
    assert attack_windows(samples([(0, 0), (0, 0)]), since=None).dropped is None
    assert attack_windows([], since=None).dropped is None


def test_more_passed_than_arrived_in_a_window_counts_as_all_passed() -> None:
    # a window boundary can fall between the bridge and the victim's tc hook: a frame
    # counted as arriving in one window may pass in the next; never a negative drop
    got = attack_windows(
        samples([(10, 10), (1000, 1000), (4000, 3900), (4000, 4100), (4000, 4000), (900, 900)]),
        since=None,
    )
    assert got.dropped == pytest.approx(100 / 12000)

"""The saturation verdict on recorded sequences of one-second lost-packet rates."""

from __future__ import annotations

import itertools

from ftagent.link.link_losses import RxLosses, lost_pps
from ftagent.link.link_saturation import SaturationSettings, SaturationVerdict

SETTINGS = SaturationSettings(lost_pps=1000.0, saturation_s=3, clear_s=4)


def verdicts(rates: list[float], settings: SaturationSettings = SETTINGS) -> list[bool]:
    v = SaturationVerdict(settings)
    return [v.observe(r) for r in rates]


def test_saturated_only_after_enough_lossy_seconds_in_a_row() -> None:
    assert verdicts([1000.0, 5000.0, 999.9]) == [False, False, False]
    assert verdicts([1000.0, 5000.0, 1000.0, 8000.0]) == [False, False, True, True]


def test_a_quiet_second_starts_the_count_again() -> None:
    rates = [3000.0, 3000.0, 10.0, 3000.0, 3000.0, 3000.0]
    assert verdicts(rates) == [False, False, False, False, False, True]


def test_it_clears_only_after_enough_quiet_seconds_in_a_row() -> None:
    lossy, quiet = 2000.0, 0.0
    rates = [lossy] * 3 + [quiet] * 3 + [lossy] + [quiet] * 4
    assert verdicts(rates) == [False, False, True] + [True] * 3 + [True] + [True] * 3 + [False]


def test_a_recorded_flood_on_a_nic_whose_ring_overflows() -> None:
    """Cumulative counters as read once a second while a flood filled an uplink: the ring
    overflows (missed) and the backlog drops, XDP's rules cannot stop it, then it ends."""
    reads = [
        (0.0, 12, 0, 0),  # quiet: a few unclaimed frames (LLDP, STP)
        (1.0, 14, 0, 0),
        (2.0, 15, 800, 0),  # the flood starts: the ring overflows a little ...
        (3.01, 2_100, 41_000, 120),  # ... then a lot, though XDP drops what it sees
        (4.0, 4_300, 83_500, 240),
        (5.0, 6_500, 126_000, 360),
        (6.0, 6_510, 126_000, 360),  # the flood ended
        (7.0, 6_512, 126_000, 360),
        (8.0, 6_512, 126_000, 360),
        (9.0, 6_515, 126_000, 360),
    ]
    counters = [RxLosses(dropped=d, missed=m, fifo=f, read_at_s=t) for t, d, m, f in reads]
    rates = [lost_pps(a, b) for a, b in itertools.pairwise(counters)]
    assert [round(r) for r in rates[:3]] == [2, 801, 41_985]
    v = SaturationVerdict(SaturationSettings(lost_pps=1000.0, saturation_s=2, clear_s=3))
    seen = [v.observe(r) for r in rates]
    assert seen == [False, False, False, True, True, True, True, False, False]


def test_a_threshold_of_one_second_saturates_at_the_first_lossy_second() -> None:
    one = SaturationSettings(lost_pps=100.0, saturation_s=1, clear_s=1)
    assert verdicts([50.0, 100.0, 99.0], one) == [False, True, False]

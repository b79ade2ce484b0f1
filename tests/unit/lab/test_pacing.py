"""The tbf parameters a paced flood gets (rate, burst, queue limit)."""

from __future__ import annotations

import pytest

from lab.pacing import BURST_S, MIN_BURST_FRAMES, QUEUE_LIMIT_BYTES, PacingError, tbf_params


def test_rate_is_pps_times_the_whole_frame() -> None:
    p = tbf_params(100_000, 128)
    assert p.rate_bytes_s == 12_800_000
    assert p.burst_bytes == int(12_800_000 * BURST_S)  # 5 ms of traffic
    assert p.limit_bytes == QUEUE_LIMIT_BYTES


def test_burst_holds_at_least_a_few_frames_at_low_rates() -> None:
    p = tbf_params(200, 1400)
    assert p.rate_bytes_s == 280_000
    assert p.burst_bytes == MIN_BURST_FRAMES * 1400


def test_no_100ms_window_can_exceed_the_rate_by_more_than_the_burst() -> None:
    for pps, frame in ((25_000, 1400), (100_000, 60), (1_000, 600)):
        p = tbf_params(pps, frame)
        window_bytes = p.rate_bytes_s * 0.1 + p.burst_bytes
        assert window_bytes / frame <= pps * 0.1 * 1.06


@pytest.mark.parametrize(
    ("pps", "frame", "field"), [(0, 128, "pps"), (-5, 128, "pps"), (100, 0, "frame_bytes")]
)
def test_bad_values_name_the_field(pps: int, frame: int, field: str) -> None:
    with pytest.raises(PacingError, match=field):
        tbf_params(pps, frame)

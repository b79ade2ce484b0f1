import pytest

from ftagent.config import SeverityConfig
from ftagent.detect.severity import severity
from ftcontract.vocabulary import severity_rank as rank

CFG = SeverityConfig()
REF_PPS, REF_BPS = 10_000.0, 100e6


@pytest.mark.parametrize(
    ("peak_pps", "peak_bps", "expected"),
    [
        (20_000, 1e6, "low"),  # 2x reference, small
        (30_000, 1e6, "medium"),  # 3x
        (100_000, 1e6, "high"),  # 10x
        (500_000, 1e6, "critical"),  # 50x
        (60_000, 1e6, "medium"),  # 6x, but >= 50k pps absolute is medium anyway
        (1_000, 1.5e9, "high"),  # 15x the bps reference and >= 1 Gbps, below 50x / 10 Gbps
        (1_000, 12e9, "critical"),  # >= 10 Gbps
    ],
)
def test_table(peak_pps, peak_bps, expected):
    assert severity(CFG, peak_pps, peak_bps, REF_PPS, REF_BPS) == expected


def test_absolute_size_alone_escalates_on_a_large_baseline():
    # 2x a huge baseline is only "low" by ratio but 1.2 Mpps is critical by size.
    assert severity(CFG, 1_200_000, 0, 600_000, 1e12) == "critical"
    assert severity(CFG, 260_000, 0, 200_000, 1e12) == "high"


def test_multi_vector_goes_one_step_up():
    assert severity(CFG, 20_000, 0, REF_PPS, REF_BPS, multi_vector=True) == "medium"
    assert severity(CFG, 600_000, 0, REF_PPS, REF_BPS, multi_vector=True) == "critical"


def test_rank_orders_severities():
    assert [rank(s) for s in ("low", "medium", "high", "critical")] == [0, 1, 2, 3]

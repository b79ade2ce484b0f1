import time

from ftagent.config import BaselineConfig, Floors
from ftagent.detect.baseline import Baseline
from ftagent.detect.detector import DETECT_METRICS, Detector, above_threshold, compute_thresholds

NOW = time.time()


def learned(pps: float, seconds: int = 10) -> Baseline:
    b = Baseline(BaselineConfig(window_s=10, min_samples=5, hour_min_samples=100000))
    for i in range(seconds):
        b.add_second({"pps": pps, "udp_pps": pps}, NOW + i)
    return b


def test_floors_apply_until_the_baseline_is_ready():
    b = Baseline(BaselineConfig(min_samples=60))
    b.add_second({"pps": 100_000.0}, NOW)
    thr = compute_thresholds(b, Floors(pps=5000), 3.0, NOW)
    assert thr["pps"] == 5000
    assert set(thr) == set(DETECT_METRICS)
    assert thr["amp_11211_pps"] == Floors().amp_port_pps


def test_threshold_is_max_of_floor_and_multiplier_times_p99():
    thr = compute_thresholds(learned(10_000.0), Floors(pps=5000, udp_pps=50_000), 3.0, NOW)
    assert thr["pps"] == 30_000.0  # 3 x p99 beats the floor
    assert thr["udp_pps"] == 50_000.0  # the floor beats 3 x p99
    assert thr["syn_pps"] == Floors().syn_pps  # nothing learned: floor


def test_above_threshold_reports_ratios():
    assert above_threshold({"pps": 3000.0, "udp_pps": 10.0}, {"pps": 1000.0, "udp_pps": 100.0}) == {
        "pps": 3.0
    }


def test_confirms_after_k_consecutive_windows():
    d = Detector(confirm_windows=3, burst_factor=5.0, cooldown_s=10.0)
    thr = {"pps": 1000.0}
    hot = {"pps": 2000.0}
    assert d.observe(hot, thr, 0.1) is None
    assert d.pending
    assert d.observe(hot, thr, 0.2) is None
    tr = d.observe(hot, thr, 0.3)
    assert tr is not None and tr.kind == "confirmed" and tr.reason == "consecutive"
    assert d.attack


def test_a_quiet_window_resets_the_count():
    d = Detector(confirm_windows=3)
    thr = {"pps": 1000.0}
    d.observe({"pps": 2000.0}, thr, 0.1)
    d.observe({"pps": 2000.0}, thr, 0.2)
    d.observe({"pps": 10.0}, thr, 0.3)
    assert not d.pending
    assert d.observe({"pps": 2000.0}, thr, 0.4) is None
    assert d.observe({"pps": 2000.0}, thr, 0.5) is None
    assert d.observe({"pps": 2000.0}, thr, 0.6) is not None


def test_burst_confirms_in_one_window():
    d = Detector(confirm_windows=3, burst_factor=5.0)
    tr = d.observe({"pps": 5000.0}, {"pps": 1000.0}, 0.1)
    assert tr is not None and tr.reason == "burst" and tr.over == {"pps": 5.0}
    d2 = Detector(confirm_windows=3, burst_factor=5.0)
    assert d2.observe({"pps": 4999.0}, {"pps": 1000.0}, 0.1) is None


def test_resolves_only_after_a_full_cooldown_below_threshold():
    d = Detector(confirm_windows=1, cooldown_s=2.0)
    thr = {"pps": 1000.0}
    d.observe({"pps": 9000.0}, thr, 10.0)
    assert d.observe({"pps": 0.0}, thr, 11.0) is None
    assert d.observe({"pps": 1500.0}, thr, 11.5) is None  # above again: cool-down restarts
    assert d.observe({"pps": 0.0}, thr, 13.0) is None
    tr = d.observe({"pps": 0.0}, thr, 13.5)
    assert tr is not None and tr.kind == "resolved"
    assert not d.attack


def test_a_wake_window_confirms_by_burst_only():
    from ftagent.detect.detector import Detector

    d = Detector(confirm_windows=3, burst_factor=5.0, cooldown_s=1.0)
    thr = {"pps": 1000.0}
    # above threshold but under the burst: neither confirms nor counts toward the three
    for i in range(5):
        assert d.observe({"pps": 3000.0}, thr, i * 0.01, burst_only=True) is None
    assert d.hot_windows == 0 and not d.attack
    tr = d.observe({"pps": 6000.0}, thr, 0.1, burst_only=True)
    assert tr is not None and tr.kind == "confirmed" and tr.reason == "burst"
    # a short quiet window never resolves; a whole one after the cool-down does
    assert d.observe({"pps": 0.0}, thr, 5.0, burst_only=True) is None and d.attack
    tr = d.observe({"pps": 0.0}, thr, 5.0)
    assert tr is not None and tr.kind == "resolved"


def test_a_wake_window_keeps_the_consecutive_count():
    from ftagent.detect.detector import Detector

    d = Detector(confirm_windows=3, burst_factor=5.0, cooldown_s=1.0)
    thr = {"pps": 1000.0}
    assert d.observe({"pps": 2000.0}, thr, 0.1) is None
    assert d.observe({"pps": 0.0}, thr, 0.15, burst_only=True) is None
    assert d.observe({"pps": 2000.0}, thr, 0.2) is None
    tr = d.observe({"pps": 2000.0}, thr, 0.3)
    assert tr is not None and tr.reason == "consecutive"


def test_wake_rate_is_the_least_burst_never_under_the_pps_threshold():
    from ftagent.detect.detector import wake_pps

    thr = {"pps": 5000.0, "bps": 1e6, "udp_pps": 5000.0, "amp_11211_pps": 1000.0}
    assert wake_pps(thr, 5.0) == 5000.0  # 5 x 1000 (bps is no packet rate)
    assert wake_pps({**thr, "pps": 60_000.0}, 5.0) == 60_000.0
    assert wake_pps({**thr, "amp_11211_pps": 4000.0}, 5.0) == 20_000.0
    assert wake_pps({"bps": 1e6}, 5.0) == 0.0


def test_slot_packets_per_cpu():
    from ftagent.bpf.wake import WAKE_SLOT_NS, slot_packets

    assert slot_packets(0, 4) == 0
    per_slot = 100_000 * WAKE_SLOT_NS / 1e9
    assert slot_packets(100_000, 1) == -(-per_slot // 1)
    assert slot_packets(100_000, 4) == -(-(per_slot / 4) // 1)
    assert slot_packets(1, 64) == 1  # never 0 (which would turn it off)

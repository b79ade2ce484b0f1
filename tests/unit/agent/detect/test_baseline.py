import json
import time
from typing import Any

import pytest

from ftagent.config import BaselineConfig
from ftagent.detect.baseline import Baseline, hour_of, percentile, summarize

NOON = time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))


def cfg(**kw: Any) -> BaselineConfig:
    base = {"window_s": 10, "min_samples": 5, "hour_min_samples": 3, "recompute_interval_s": 1}
    base.update(kw)
    return BaselineConfig(**base)


def test_percentile_interpolates_between_ranks():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.5) == pytest.approx(50.5)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([], 0.99) == 0.0
    st = summarize([10.0, 20.0, 30.0, 40.0])
    assert st.avg == 25.0
    assert st.p95 == pytest.approx(38.5)


def test_rolling_window_keeps_the_last_window_s_points():
    b = Baseline(cfg(window_s=10))
    for i in range(25):
        b.add_second({"pps": float(i)}, NOON + i)
    assert b.samples == 10
    assert list(b.points["pps"]) == [float(v) for v in range(15, 25)]
    assert b.stat("pps").avg == pytest.approx(19.5)
    assert b.stat("pps").p99 == pytest.approx(percentile([float(v) for v in range(15, 25)], 0.99))


def test_not_ready_means_no_learned_p99():
    b = Baseline(cfg(min_samples=5))
    for i in range(4):
        b.add_second({"pps": 1000.0}, NOON + i)
    assert not b.ready
    assert b.effective_p99("pps", NOON) == 0.0
    b.add_second({"pps": 1000.0}, NOON + 5)
    assert b.ready
    assert b.effective_p99("pps", NOON) == 1000.0


def test_trusted_hour_bucket_raises_the_effective_p99():
    b = Baseline(cfg(window_s=10, min_samples=5, hour_min_samples=3))
    for i in range(10):  # busy noon: 5000 pps
        b.add_second({"pps": 5000.0}, NOON + i)
    bucket = b.hours[hour_of(NOON)]
    assert bucket.count == 10
    assert bucket.mean["pps"] == 5000.0
    assert bucket.p99["pps"] == pytest.approx(5000.0)
    # Quiet minutes later in the same hour: the rolling p99 drops, the bucket remembers.
    for i in range(10):
        b.add_second({"pps": 100.0}, NOON + 60 + i)
    assert b.stat("pps").p99 == pytest.approx(100.0)
    assert b.effective_p99("pps", NOON + 70) > 1000.0
    # Another hour whose bucket has not been trusted yet: the rolling p99 alone.
    assert b.hour_bucket(NOON + 3 * 3600) is None
    assert b.effective_p99("pps", NOON + 3 * 3600) == pytest.approx(100.0)


def test_untrusted_hour_bucket_is_ignored():
    b = Baseline(cfg(min_samples=2, hour_min_samples=1000))
    for i in range(5):
        b.add_second({"pps": 10.0}, NOON + i)
    assert b.hour_bucket(NOON) is None


def test_persistence_round_trip(tmp_path):
    c = cfg()
    b = Baseline(c)
    for i in range(8):
        b.add_second({"pps": float(i * 10), "syn_pps": 3.0}, NOON + i)
    path = tmp_path / "state" / "baseline.json"
    b.save(path, now=NOON + 8)
    assert not list(path.parent.glob("*.tmp"))
    back = Baseline.load(path, c, now=NOON + 60)
    assert back is not None
    assert list(back.points["pps"]) == list(b.points["pps"])
    assert back.stat("pps") == b.stat("pps")
    assert back.hours[hour_of(NOON)].mean == b.hours[hour_of(NOON)].mean
    assert back.ready


def test_stale_or_broken_state_is_discarded(tmp_path):
    c = cfg(max_age_s=86400)
    b = Baseline(c)
    b.add_second({"pps": 1.0}, NOON)
    path = tmp_path / "baseline.json"
    b.save(path, now=NOON)
    assert Baseline.load(path, c, now=NOON + 86400 - 1) is not None
    assert Baseline.load(path, c, now=NOON + 86400 + 1) is None
    path.write_text("{not json")
    assert Baseline.load(path, c) is None
    path.write_text(json.dumps({"version": 999}))
    assert Baseline.load(path, c) is None
    assert Baseline.load(tmp_path / "absent.json", c) is None

"""A group's learned baseline: rolling window of its summed seconds plus hour-of-day
buckets, as the agent's (ftagent.detect.baseline), on the metrics of ftcontract.classify.

Only complete quiet seconds are learned (the engine never adds a second a member was
missing from, nor one during a fleet incident). Until `min_samples` seconds are learned
the effective p99 is 0, so the floors apply alone. The state is a msgspec Struct stored
as JSON in fleet_baselines; a saved state older than the max age is dropped at load.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping

import msgspec

from ftcontract.classify import METRICS

HOUR_EWMA_ALPHA = 0.1
RECOMPUTE_EVERY = 10


class HourState(msgspec.Struct, kw_only=True):
    count: int = 0
    mean: dict[str, float] = {}
    p99: dict[str, float] = {}


class BaselineState(msgspec.Struct, kw_only=True):
    """What fleet_baselines.state holds (JSON)."""

    saved_at: float
    window: dict[str, list[float]]
    hours: list[HourState]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def hour_of(at_unix: float) -> int:
    return time.localtime(at_unix).tm_hour


class GroupBaseline:
    def __init__(self, window_s: int, min_samples: int, hour_min_samples: int) -> None:
        self.window_s = window_s
        self.min_samples = min_samples
        self.hour_min_samples = hour_min_samples
        self.window: dict[str, deque[float]] = {m: deque(maxlen=window_s) for m in METRICS}
        self.hours = [HourState() for _ in range(24)]
        self._p99: dict[str, float] = dict.fromkeys(METRICS, 0.0)
        self._avg: dict[str, float] = dict.fromkeys(METRICS, 0.0)
        self._since = 0
        self.dirty = False

    # ---- learning ----------------------------------------------------------------------

    def learn(self, second: Mapping[str, float], at_unix: float) -> None:
        """One complete, quiet second of the group's sum."""
        bucket = self.hours[hour_of(at_unix)]
        bucket.count += 1
        for m in METRICS:
            v = float(second.get(m, 0.0))
            self.window[m].append(v)
            prev = bucket.mean.get(m, 0.0)
            bucket.mean[m] = prev + (v - prev) / bucket.count
        self._since += 1
        self.dirty = True
        if self._since >= RECOMPUTE_EVERY or not self.ready:
            self.recompute(at_unix)

    def recompute(self, at_unix: float) -> None:
        self._stats()
        if not self.ready:
            return
        bucket = self.hours[hour_of(at_unix)]
        for m in METRICS:
            old = bucket.p99.get(m)
            p99 = self._p99[m]
            bucket.p99[m] = p99 if old is None else old + HOUR_EWMA_ALPHA * (p99 - old)

    def _stats(self) -> None:
        self._since = 0
        for m in METRICS:
            values = sorted(self.window[m])
            self._p99[m] = percentile(values, 0.99)
            self._avg[m] = sum(values) / len(values) if values else 0.0

    # ---- reading -----------------------------------------------------------------------

    @property
    def samples(self) -> int:
        return len(self.window["pps"])

    @property
    def ready(self) -> bool:
        return self.samples >= self.min_samples

    def p99(self, metric: str, at_unix: float) -> float:
        """The effective p99: max(rolling, this hour's when trusted); 0 until ready."""
        if not self.ready:
            return 0.0
        value = self._p99.get(metric, 0.0)
        bucket = self.hours[hour_of(at_unix)]
        if bucket.count >= self.hour_min_samples:
            value = max(value, bucket.p99.get(metric, 0.0))
        return value

    def averages(self) -> dict[str, float]:
        """The mean per metric for the classifier (empty until ready: raw rates are used)."""
        return dict(self._avg) if self.ready else {}

    # ---- persistence -------------------------------------------------------------------

    def state(self, now: float) -> BaselineState:
        return BaselineState(
            saved_at=now,
            window={m: list(v) for m, v in self.window.items()},
            hours=[
                HourState(count=h.count, mean=dict(h.mean), p99=dict(h.p99)) for h in self.hours
            ],
        )

    def restore(self, state: BaselineState, now: float, max_age_s: float) -> bool:
        """Take a saved state; False (nothing taken) when it is too old or malformed."""
        if now - state.saved_at > max_age_s or len(state.hours) != 24:
            return False
        values = [*(v for vs in state.window.values() for v in vs)]
        values += [v for h in state.hours for v in (*h.mean.values(), *h.p99.values())]
        if not all(math.isfinite(v) and v >= 0 for v in values):
            return False
        for m in METRICS:
            self.window[m] = deque(state.window.get(m, [])[-self.window_s :], maxlen=self.window_s)
        # every metric keeps the same number of samples (a metric added since: zeros)
        n = max(len(d) for d in self.window.values())
        for m in METRICS:
            while len(self.window[m]) < n:
                self.window[m].appendleft(0.0)
        self.hours = [
            HourState(
                count=h.count,
                mean={k: v for k, v in h.mean.items() if k in METRICS},
                p99={k: v for k, v in h.p99.items() if k in METRICS},
            )
            for h in state.hours
        ]
        self._stats()
        self.dirty = False
        return True

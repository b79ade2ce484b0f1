"""What normal traffic looks like: a rolling window of one-second aggregates per metric.

- Rolling window (`window_s` points): avg, p95, p99 per metric, recomputed every
  `recompute_interval_s` seconds (sorting 300 floats per metric is cheap; doing it at 10 Hz
  would not be needed).
- 24 hour-of-day buckets (local time): per metric the running mean of every second seen in
  that hour, and p95/p99 as an exponentially weighted mean (alpha 0.1) of the rolling
  percentiles observed while in that hour. A bucket is trusted after `hour_min_samples`
  seconds; then the effective p99 is max(rolling p99, bucket p99), so a peak that is usual
  at this hour of the day is not taken for an attack after a quiet spell.
- The caller feeds only quiet seconds: any second overlapping an attack (or a window above
  threshold) is left out.
- Persisted as JSON (written to a temporary file, fsynced, renamed over the old one);
  a file older than `max_age_s` is discarded at load.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftagent.config import BaselineConfig
from ftagent.detect.rates import METRICS

FORMAT_VERSION = 1
HOUR_EWMA_ALPHA = 0.1


@dataclass(frozen=True, slots=True)
class Stat:
    avg: float
    p95: float
    p99: float


ZERO = Stat(0.0, 0.0, 0.0)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in [0, 1]); 0 for no values."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    pos = (n - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return sorted_values[lo]
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: list[float]) -> Stat:
    if not values:
        return ZERO
    s = sorted(values)
    return Stat(sum(s) / len(s), percentile(s, 0.95), percentile(s, 0.99))


@dataclass(slots=True)
class HourBucket:
    count: int
    mean: dict[str, float]
    p95: dict[str, float]
    p99: dict[str, float]

    @classmethod
    def empty(cls) -> HourBucket:
        return cls(0, {}, {}, {})


def hour_of(at_unix: float) -> int:
    return time.localtime(at_unix).tm_hour


class Baseline:
    def __init__(self, cfg: BaselineConfig, metrics: tuple[str, ...] = METRICS) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.points: dict[str, deque[float]] = {m: deque(maxlen=cfg.window_s) for m in metrics}
        self.hours: list[HourBucket] = [HourBucket.empty() for _ in range(24)]
        self._stats: dict[str, Stat] = dict.fromkeys(metrics, ZERO)
        self._since_recompute = 0
        self.last_point_at = 0.0

    # -- learning -------------------------------------------------------------------------

    def add_second(self, point: dict[str, float], at_unix: float) -> None:
        """Add one quiet one-second aggregate observed at `at_unix`."""
        bucket = self.hours[hour_of(at_unix)]
        bucket.count += 1
        for m in self.metrics:
            v = float(point.get(m, 0.0))
            self.points[m].append(v)
            prev = bucket.mean.get(m, 0.0)
            bucket.mean[m] = prev + (v - prev) / bucket.count
        self.last_point_at = at_unix
        self._since_recompute += 1
        # Recompute often while warming up so thresholds follow the first samples.
        if self._since_recompute >= self.cfg.recompute_interval_s or not self.ready:
            self.recompute(at_unix)

    def recompute(self, at_unix: float) -> None:
        self._since_recompute = 0
        self._stats = {m: summarize(list(self.points[m])) for m in self.metrics}
        if not self.ready:
            return
        bucket = self.hours[hour_of(at_unix)]
        for m in self.metrics:
            st = self._stats[m]
            for target, value in ((bucket.p95, st.p95), (bucket.p99, st.p99)):
                old = target.get(m)
                target[m] = value if old is None else old + HOUR_EWMA_ALPHA * (value - old)

    # -- reading --------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        return len(self.points[self.metrics[0]])

    @property
    def ready(self) -> bool:
        return self.samples >= self.cfg.min_samples

    def stat(self, metric: str) -> Stat:
        return self._stats.get(metric, ZERO)

    def hour_bucket(self, at_unix: float) -> HourBucket | None:
        """The bucket for this hour of day if it is trusted, else None."""
        b = self.hours[hour_of(at_unix)]
        return b if b.count >= self.cfg.hour_min_samples and b.p99 else None

    def effective_p99(self, metric: str, at_unix: float) -> float:
        if not self.ready:
            return 0.0
        p99 = self.stat(metric).p99
        bucket = self.hour_bucket(at_unix)
        if bucket is not None:
            p99 = max(p99, bucket.p99.get(metric, 0.0))
        return p99

    # -- persistence ----------------------------------------------------------------------

    def to_dict(self, saved_at: float) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "saved_at": saved_at,
            "window_s": self.cfg.window_s,
            "points": {m: list(self.points[m]) for m in self.metrics},
            "hours": [
                {"count": b.count, "mean": b.mean, "p95": b.p95, "p99": b.p99} for b in self.hours
            ],
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], cfg: BaselineConfig, metrics: tuple[str, ...] = METRICS
    ) -> Baseline:
        b = cls(cfg, metrics)
        points = data.get("points", {})
        length = min((len(points.get(m, [])) for m in metrics), default=0)
        for m in metrics:
            # Metrics unknown to the file (added later) start at zero for the same length.
            values = points.get(m, [0.0] * length)[-length:] if length else []
            b.points[m].extend(float(v) for v in values)
        for i, h in enumerate(data.get("hours", [])[:24]):
            b.hours[i] = HourBucket(
                int(h.get("count", 0)),
                {k: float(v) for k, v in h.get("mean", {}).items() if k in metrics},
                {k: float(v) for k, v in h.get("p95", {}).items() if k in metrics},
                {k: float(v) for k, v in h.get("p99", {}).items() if k in metrics},
            )
        b.last_point_at = float(data.get("saved_at", 0.0))
        b._stats = {m: summarize(list(b.points[m])) for m in metrics}
        return b

    def save(self, path: Path, now: float | None = None) -> None:
        """Write atomically: a crash leaves either the old file or the new one."""
        data = json.dumps(self.to_dict(time.time() if now is None else now), separators=(",", ":"))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, cfg: BaselineConfig, now: float | None = None) -> Baseline | None:
        """The persisted baseline, or None when absent, unreadable or stale."""
        return cls.load_with_reason(path, cfg, now)[0]

    @classmethod
    def load_with_reason(
        cls, path: Path, cfg: BaselineConfig, now: float | None = None
    ) -> tuple[Baseline | None, str]:
        """(the persisted baseline, "") or (None, why it cannot be used).

        Never raises on the file's content: a truncated write, a disk error or a hand
        edit must cost the baseline, not the agent."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, "no saved baseline"
        except (OSError, UnicodeDecodeError) as exc:
            return None, f"unreadable ({exc})"
        try:
            data = json.loads(text)
        except ValueError as exc:
            return None, f"corrupt: not valid JSON ({exc})"
        if not isinstance(data, dict):
            return None, "corrupt: not a JSON object"
        if data.get("version") != FORMAT_VERSION:
            version = data.get("version")
            return None, f"format version {version!r}, this agent reads {FORMAT_VERSION}"
        now = time.time() if now is None else now
        try:
            saved_at = float(data.get("saved_at", 0.0))
            if not math.isfinite(saved_at) or saved_at > now + 60:
                return None, f"corrupt: saved_at {data.get('saved_at')!r} is not a past time"
            if now - saved_at > cfg.max_age_s:
                age = now - saved_at
                return None, f"stale: saved {age:.0f} s ago (max_age_s {cfg.max_age_s:g})"
            baseline = cls.from_dict(data, cfg)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            return None, f"corrupt: {type(exc).__name__}: {exc}"
        if not baseline._finite():
            return None, "corrupt: NaN or infinite values"
        return baseline, ""

    def _finite(self) -> bool:
        values = [v for m in self.metrics for v in self.points[m]]
        for h in self.hours:
            values += [*h.mean.values(), *h.p95.values(), *h.p99.values()]
        return all(math.isfinite(v) for v in values)

"""`Reference`: what traffic is judged against — the baseline and the detection settings in
force (the config's, or the control plane's overrides): per-metric thresholds, severity,
rate limits and the baseline means the classifier takes shares of the excess over."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftagent.config import Config, Floors
from ftagent.detect.baseline import Baseline
from ftagent.detect.detector import compute_thresholds
from ftagent.detect.rates import METRICS
from ftagent.detect.severity import severity
from ftcontract.vocabulary import Severity


@dataclass(slots=True)
class Settings:
    """Detection settings the control plane may override at run time."""

    multiplier: float
    burst_factor: float
    confirm_windows: int
    cooldown_s: float
    floors: Floors


class Reference:
    def __init__(self, cfg: Config, baseline: Baseline, wall: Callable[[], float]) -> None:
        d = cfg.detection
        self.cfg = cfg
        self.baseline = baseline
        self.wall = wall
        self.settings = Settings(
            d.multiplier, d.burst_factor, d.confirm_windows, d.cooldown_s, d.floors
        )
        self.thresholds: dict[str, float] = {}
        self.refresh()

    def refresh(self) -> None:
        """Recompute the thresholds (after the baseline or the settings moved)."""
        s = self.settings
        self.thresholds = compute_thresholds(self.baseline, s.floors, s.multiplier, self.wall())

    def threshold(self, metric: str) -> float:
        return self.thresholds.get(metric, float("inf"))

    def base_avgs(self) -> dict[str, float]:
        if not self.baseline.ready:
            return {}
        return {m: self.baseline.stat(m).avg for m in METRICS}

    def rate_limit(self, metric: str) -> int:
        p99 = self.baseline.effective_p99(metric, self.wall())
        return max(self.cfg.mitigation.rate_limit_min_pps, int(self.settings.multiplier * p99))

    def severity(self, peak_pps: float, peak_bps: float, multi_vector: bool) -> Severity:
        now = self.wall()
        floors = self.settings.floors
        ref_pps = max(self.baseline.effective_p99("pps", now), floors.pps)
        ref_bps = max(self.baseline.effective_p99("bps", now), floors.bps)
        return severity(self.cfg.severity, peak_pps, peak_bps, ref_pps, ref_bps, multi_vector)

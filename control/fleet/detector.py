"""A group's detection state machine on its evaluated seconds (pure: no I/O).

threshold(metric) = max(floor, multiplier x baseline p99). quiet -> attack after
`confirm_s` consecutive seconds above a threshold, at once on one second above
`burst_factor` x threshold; attack -> resolved after `cooldown_s` *complete* seconds with
every metric below its threshold. A second with missing members is a lower bound of the
real sum: above a threshold it counts (the attack is at least that big); below, it tells
nothing, so it neither resets the confirmation nor counts towards the cool-down.

Classification: ftcontract.classify.classify_rates on the summed rates against the
baseline's means (the one classifier of agent and control plane); severity:
ftcontract.severity.severity with the group's p99 (or floor) as the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from control.fleet.aggregation import GroupSecond
from control.fleet.settings import EffectiveThresholds
from ftcontract.classify import METRICS, Classification, Rates, classify_rates
from ftcontract.severity import SeverityScale, severity
from ftcontract.vocabulary import Severity, severity_rank


def thresholds_for(eff: EffectiveThresholds, p99: Mapping[str, float]) -> dict[str, float]:
    return {m: max(eff.floor_of(m), eff.multiplier * p99.get(m, 0.0)) for m in METRICS}


def over_thresholds(
    metrics: Mapping[str, float], thresholds: Mapping[str, float]
) -> dict[str, float]:
    """Metrics above their threshold -> how many times over."""
    return {
        m: metrics.get(m, 0.0) / max(t, 1.0)
        for m, t in thresholds.items()
        if metrics.get(m, 0.0) > t
    }


def signature(c: Classification) -> tuple[tuple[str, str, int | None], ...]:
    """What the nodes' orders are planned from: a change here is a new order version."""
    return tuple(sorted((v.family, v.group, v.amp_port) for v in c.vectors))


@dataclass(frozen=True, slots=True)
class Step:
    kind: Literal["quiet", "opened", "ongoing", "resolved"]
    learnable: bool  # a complete quiet second: the baseline may learn it
    changed: bool = False  # vectors or severity moved (ongoing)
    over: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class GroupDetector:
    state: Literal["quiet", "attack"] = "quiet"
    hot: int = 0  # consecutive seconds above a threshold while quiet
    calm: int = 0  # consecutive complete seconds below every threshold while attacking
    started_at: float = 0.0
    peak_pps: float = 0.0
    peak_bps: float = 0.0
    current_pps: float = 0.0
    current_bps: float = 0.0
    classification: Classification | None = None
    severity: Severity = "low"
    threshold_pps: float = 0.0
    ref_pps: float = 0.0
    ref_bps: float = 0.0

    def observe(
        self,
        gs: GroupSecond,
        thresholds: Mapping[str, float],
        eff: EffectiveThresholds,
        base_avg: Mapping[str, float],
        p99: Mapping[str, float],
        scale: SeverityScale,
    ) -> Step:
        over = over_thresholds(gs.metrics, thresholds)
        burst = any(gs.metrics.get(m, 0.0) > eff.burst_factor * thresholds[m] for m in over)
        self.threshold_pps = thresholds["pps"]
        self.ref_pps = max(p99.get("pps", 0.0), eff.floor_of("pps"))
        self.ref_bps = max(p99.get("bps", 0.0), eff.floor_of("bps"))
        if self.state == "quiet":
            if over:
                self.hot += 1
                if self.hot >= eff.confirm_s or burst:
                    self._open(gs, base_avg, scale)
                    return Step("opened", False, True, over)
                return Step("quiet", False, over=over)
            if gs.complete:
                self.hot = 0
            return Step("quiet", gs.complete, over=over)
        # attacking
        if over:
            self.calm = 0
            changed = self._follow(gs, base_avg, scale)
            return Step("ongoing", False, changed, over)
        self.current_pps, self.current_bps = gs.metrics["pps"], gs.metrics["bps"]
        if gs.complete:
            self.calm += 1
            if self.calm >= eff.cooldown_s:
                self._reset()
                return Step("resolved", False)
        return Step("ongoing", False)

    def _classify(self, gs: GroupSecond, base_avg: Mapping[str, float]) -> Classification:
        return classify_rates(Rates(gs.metrics, gs.udp_ports, gs.ipv6_pps), base_avg)

    def _open(self, gs: GroupSecond, base_avg: Mapping[str, float], scale: SeverityScale) -> None:
        self.state = "attack"
        self.hot = self.calm = 0
        self.started_at = float(gs.second)
        self.peak_pps = self.peak_bps = 0.0
        self.severity = "low"
        self.classification = None
        self._follow(gs, base_avg, scale)

    def _follow(self, gs: GroupSecond, base_avg: Mapping[str, float], scale: SeverityScale) -> bool:
        """Track peaks, classification and severity; True when vectors or severity moved."""
        pps, bps = gs.metrics["pps"], gs.metrics["bps"]
        self.current_pps, self.current_bps = pps, bps
        self.peak_pps, self.peak_bps = max(self.peak_pps, pps), max(self.peak_bps, bps)
        fresh = self._classify(gs, base_avg)
        changed = False
        if (
            fresh.vectors
            and (self.classification is None or signature(fresh) != signature(self.classification))
        ) or self.classification is None:
            self.classification = fresh
            changed = True
        level = severity(
            scale,
            self.peak_pps,
            self.peak_bps,
            self.ref_pps,
            self.ref_bps,
            self.classification.family == "multi_vector",
        )
        if severity_rank(level) > severity_rank(self.severity):  # only ever goes up
            self.severity = level
            changed = True
        return changed

    def _reset(self) -> None:
        self.state = "quiet"
        self.hot = self.calm = 0
        self.classification = None

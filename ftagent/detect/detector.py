"""Thresholds and the confirm / burst / cool-down state machine.

threshold(metric) = max(floor(metric), multiplier x effective p99(metric)); until the
baseline is ready the effective p99 is 0, so the static floors apply alone.

States: quiet -> (K consecutive windows above a threshold, or one window above
burst_factor x threshold) -> attack -> (cooldown_s with every metric below its threshold)
-> quiet. Rates are what the interface received, dropped packets included (the XDP
program counts before it applies rules), so a mitigated attack stays an attack until it
really stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ftagent.config import Floors
from ftagent.datapath import AMP_PORTS
from ftagent.detect.baseline import Baseline
from ftagent.detect.rates import amp_metric

# Metric -> the Floors field that bounds it from below.
FLOOR_OF: dict[str, str] = {
    "pps": "pps",
    "bps": "bps",
    "tcp_pps": "tcp_pps",
    "udp_pps": "udp_pps",
    "icmp_pps": "icmp_pps",
    "fragment_pps": "fragment_pps",
    "syn_pps": "syn_pps",
    "ack_pps": "ack_pps",
    "rst_pps": "rst_pps",
    **{amp_metric(p): "amp_port_pps" for p in AMP_PORTS},
}
DETECT_METRICS: tuple[str, ...] = tuple(FLOOR_OF)


def compute_thresholds(
    baseline: Baseline, floors: Floors, multiplier: float, at_unix: float
) -> dict[str, float]:
    out = {}
    for metric, floor_name in FLOOR_OF.items():
        floor = float(getattr(floors, floor_name))
        out[metric] = max(floor, multiplier * baseline.effective_p99(metric, at_unix))
    return out


def above_threshold(metrics: dict[str, float], thresholds: dict[str, float]) -> dict[str, float]:
    """Metrics over their threshold -> how many times over (rate / threshold)."""
    out = {}
    for m, thr in thresholds.items():
        v = metrics.get(m, 0.0)
        if v > thr:
            out[m] = v / max(thr, 1.0)  # finite even with a zero floor (JSON evidence)
    return out


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Literal["confirmed", "resolved"]
    reason: str  # "burst" | "consecutive" | "cooldown"
    over: dict[str, float]  # metrics above threshold in the deciding window (ratios)


def wake_pps(thresholds: dict[str, float], burst_factor: float) -> float:
    """The total packet rate at which the kernel should wake the loop between polls: the
    least rate at which a window can confirm by the burst rule (some packet-rate metric at
    burst_factor x its threshold), but never below the pps threshold itself, so that
    traffic under every threshold wakes nothing. 0 when there are no packet thresholds."""
    packet = [v for m, v in thresholds.items() if m != "bps"]
    if not packet:
        return 0.0
    return max(thresholds.get("pps", 0.0), burst_factor * min(packet))


@dataclass(slots=True)
class Detector:
    confirm_windows: int = 3
    burst_factor: float = 5.0
    cooldown_s: float = 10.0
    state: Literal["quiet", "attack"] = "quiet"
    hot_windows: int = 0  # consecutive windows above threshold while quiet
    last_above_s: float = 0.0

    @property
    def attack(self) -> bool:
        return self.state == "attack"

    @property
    def pending(self) -> bool:
        """Quiet, but the last window was above threshold (baseline learning pauses)."""
        return self.state == "quiet" and self.hot_windows > 0

    def observe(
        self,
        metrics: dict[str, float],
        thresholds: dict[str, float],
        now_s: float,
        *,
        burst_only: bool = False,
    ) -> Transition | None:
        """Feed one window (monotonic seconds at its end); returns a state change or None.

        `burst_only`: a short window the kernel's wake-up asked for, between two polls. It
        can confirm only by the burst rule (one window far above threshold); it neither
        counts toward nor resets the consecutive windows, and never resolves: those rules
        are about sustained load over whole poll windows."""
        over = above_threshold(metrics, thresholds)
        if burst_only:
            if self.state == "attack":
                if over:
                    self.last_above_s = now_s
                return None
            if over and max(over.values()) >= self.burst_factor:
                self.state = "attack"
                self.last_above_s = now_s
                self.hot_windows = 0
                return Transition("confirmed", "burst", over)
            return None
        if self.state == "quiet":
            if not over:
                self.hot_windows = 0
                return None
            self.hot_windows += 1
            burst = max(over.values()) >= self.burst_factor
            if burst or self.hot_windows >= self.confirm_windows:
                self.state = "attack"
                self.last_above_s = now_s
                self.hot_windows = 0
                return Transition("confirmed", "burst" if burst else "consecutive", over)
            return None
        if over:
            self.last_above_s = now_s
            return None
        if now_s - self.last_above_s >= self.cooldown_s:
            self.state = "quiet"
            self.hot_windows = 0
            return Transition("resolved", "cooldown", over)
        return None

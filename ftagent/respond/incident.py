"""One attack from confirmation to resolution: its numbers, classification, rules, history,
and the figures it reports (`report()`), each report with the next `seq`.

Rates. An attack starts somewhere inside a detection window, so the incident's first
window is only partly filled and reads low. `peak_burst_pps` is the highest single window
(100 ms by default: bursts show there). `peak_pps` is the highest one-second rate: the
mean over the last second of windows, leaving the partial first window out. Until a full
second has been seen, the mean over the windows so far stands in for it (and is replaced
by the first full second's rate). Severity is judged on `peak_pps`.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import deque
from dataclasses import dataclass, field
from typing import cast

from ftagent.datapath import RuleSpec
from ftagent.detect.rates import Window
from ftagent.events import IncidentReport, MitigationStep
from ftagent.evidence.classifier import Classification
from ftcontract import agent_api
from ftcontract.vocabulary import Family, MitigationMode, ResolveReason, RuleKind, Severity

ONE_SECOND_NS = 1_000_000_000
# A span of windows this long counts as a full second (window lengths jitter).
FULL_SECOND_S = 0.9
MITIGATING_ACTIONS = ("rules_added", "widened")


def rule_figure(
    spec: RuleSpec, ttl_s: float, dropped_packets: int, spared_packets: int = 0
) -> agent_api.RuleFigure:
    """A rule as the incident reports it, from the spec's own fields, with what it dropped
    and what it spared (passed because a socket of the node wanted it)."""
    limited = spec.rate_pps is not None
    kind = {"src": "source", "prefix": "prefix", "signature": "signature"}[spec.kind]
    return agent_api.RuleFigure(
        kind="rate_limit" if limited else cast(RuleKind, kind),
        match=spec.describe(),
        action="rate_limit" if limited else "drop",
        ttl_sec=int(ttl_s),
        dropped_packets=dropped_packets,
        spared_packets=spared_packets,
        network=str(spec.network) if spec.network is not None else None,
        proto=spec.proto,
        src_port=spec.src_port,
        dst_port=spec.dst_port,
        tcp_flags=spec.tcp_flags,
        tcp_flags_mask=spec.tcp_flags_mask,
        dst=str(spec.dst) if spec.dst is not None else None,
        rate_pps=spec.rate_pps,
    )


@dataclass(slots=True)
class Incident:
    classification: Classification
    started_at: float  # Unix seconds
    interface: str
    baseline_pps: float  # effective p99 when confirmed
    threshold_pps: float
    confirm_reason: str
    mitigation_mode: MitigationMode
    severity: Severity = "low"
    severity_provisional: bool = False  # judged on the confirming window alone
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    peak_pps: float = 0.0  # one-second
    peak_bps: float = 0.0
    peak_burst_pps: float = 0.0  # one window
    peak_burst_bps: float = 0.0
    current_pps: float = 0.0  # the last one-second rate
    windows_seen: int = 0
    _full_second: bool = False
    _last_second: deque[Window] = field(default_factory=deque)
    top_sources: list[agent_api.SourceFigure] = field(default_factory=list)
    source_count: int = 0
    rules: list[RuleSpec] = field(default_factory=list)
    history: list[MitigationStep] = field(default_factory=list)
    mitigated_at: float | None = None
    seq: int = 0
    ended_at: float | None = None

    @property
    def family(self) -> str:
        return self.classification.family

    @property
    def has_full_window(self) -> bool:
        """A window after the partly filled first one has been seen."""
        return self.windows_seen > 1

    def observe(self, w: Window) -> None:
        pps, bps = w.metrics["pps"], w.metrics["bps"]
        self.peak_burst_pps = max(self.peak_burst_pps, pps)
        self.peak_burst_bps = max(self.peak_burst_bps, bps)
        self.windows_seen += 1
        if self.windows_seen == 1:
            return  # the partial first window: no one-second rate from it
        span = self._last_second
        span.append(w)
        while span and span[0].end_ns <= w.end_ns - ONE_SECOND_NS:
            span.popleft()
        seconds = sum(x.duration_s for x in span)
        if seconds <= 0:
            return
        self.current_pps = sum(x.metrics["pps"] * x.duration_s for x in span) / seconds
        current_bps = sum(x.metrics["bps"] * x.duration_s for x in span) / seconds
        if seconds >= FULL_SECOND_S:
            if not self._full_second:  # the first full second replaces the estimate
                self._full_second = True
                self.peak_pps = self.peak_bps = 0.0
            self.peak_pps = max(self.peak_pps, self.current_pps)
            self.peak_bps = max(self.peak_bps, current_bps)
        else:  # the incident's first second: the rate so far stands in for it
            self.peak_pps, self.peak_bps = self.current_pps, current_bps

    def record(self, at: float, action: str, reason: str, rules: list[str] | None = None) -> None:
        self.history.append(
            MitigationStep(at=at, action=action, reason=reason, rules=tuple(rules or ()))
        )
        if action in MITIGATING_ACTIONS and self.mitigated_at is None:
            self.mitigated_at = at

    def report(
        self, rules: list[agent_api.RuleFigure], reason: ResolveReason | None = None
    ) -> IncidentReport:
        """The next report: every figure the incident knows, with the next `seq`."""
        self.seq += 1
        c = self.classification
        group = c.evidence.get("group_share", {})
        figures = agent_api.IncidentFigures(
            seq=self.seq,
            family=cast(Family, c.family),
            subtype=c.subtype or None,
            severity=self.severity,
            severity_provisional=self.severity_provisional,
            peak_pps=round(self.peak_pps, 1),
            peak_bps=round(self.peak_bps, 1),
            peak_burst_pps=round(self.peak_burst_pps, 1),
            peak_burst_bps=round(self.peak_burst_bps, 1),
            current_pps=round(self.current_pps, 1),
            baseline_p99_pps=round(self.baseline_pps, 1),
            threshold_pps=round(self.threshold_pps, 1),
            # the classifier's shares are fractions; the contract's are percent
            protocols={
                k: round(100.0 * float(group.get(k, 0.0)), 2)
                for k in ("tcp", "udp", "icmp", "other")
            },
            top_sources=list(self.top_sources),
            source_count=self.source_count,
            evidence=dict(c.evidence),
            rules=rules,
            mitigated_at=self.mitigated_at,
        )
        return IncidentReport(
            uuid=self.uuid,
            started_at=self.started_at,
            figures=figures,
            mitigation_mode=self.mitigation_mode,
            history=tuple(self.history),
            ended_at=self.ended_at,
            reason=reason,
        )

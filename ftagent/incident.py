"""One attack from confirmation to resolution: numbers, classification, rules, history."""

from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ftagent.classifier import Classification
from ftagent.rates import Window
from ftcontract.vocabulary import Severity


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Incident:
    classification: Classification
    severity: Severity
    started_mono: float
    started_at: float  # unix
    interface: str
    baseline_pps: float
    threshold_pps: float
    confirm_reason: str
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    status: str = "active"
    peak_pps: float = 0.0
    peak_bps: float = 0.0
    _pkt_sum: float = 0.0  # packets (rate x seconds) over the incident
    _bit_sum: float = 0.0
    _seconds: float = 0.0
    dropped_packets: float = 0.0
    top_sources: list[dict[str, Any]] = field(default_factory=list)
    source_count: int = 0
    rules: list[str] = field(default_factory=list)
    mitigation: list[dict[str, Any]] = field(default_factory=list)
    mitigation_mode: str = "on"
    ended_at: float | None = None
    pcap_path: str | None = None
    escalations: int = 0

    @property
    def family(self) -> str:
        return self.classification.family

    @property
    def mean_pps(self) -> float:
        return self._pkt_sum / self._seconds if self._seconds else 0.0

    @property
    def mean_bps(self) -> float:
        return self._bit_sum / self._seconds if self._seconds else 0.0

    def observe(self, w: Window) -> None:
        pps, bps = w.metrics["pps"], w.metrics["bps"]
        self.peak_pps = max(self.peak_pps, pps)
        self.peak_bps = max(self.peak_bps, bps)
        self._pkt_sum += pps * w.duration_s
        self._bit_sum += bps * w.duration_s
        self._seconds += w.duration_s
        self.dropped_packets += w.dropped_pps * w.duration_s

    def record(self, action: str, reason: str, rules: list[str] | None = None) -> None:
        self.mitigation.append(
            {"at": iso(time.time()), "action": action, "reason": reason, "rules": rules or []}
        )

    def to_dict(self) -> dict[str, Any]:
        c = self.classification
        ev = c.evidence
        group = ev.get("group_share", {})
        d: dict[str, Any] = {
            "uuid": self.uuid,
            "status": self.status,
            "family": c.family,
            "subtype": c.subtype,
            "severity": self.severity,
            "started_at": iso(self.started_at),
            "started_at_unix": round(self.started_at, 3),
            "peak_pps": round(self.peak_pps),
            "peak_bps": round(self.peak_bps),
            "mean_pps": round(self.mean_pps),
            "mean_bps": round(self.mean_bps),
            "dropped_packets": round(self.dropped_packets),
            "baseline_pps": round(self.baseline_pps, 1),
            "threshold_pps": round(self.threshold_pps, 1),
            "confirmed_by": self.confirm_reason,
            "evidence": ev,
            "top_sources": self.top_sources,
            "top_dst_ports": ev.get("top_dst_ports", []),
            "source_count": self.source_count,
            "protocol_breakdown": {k: group.get(k, 0.0) for k in ("tcp", "udp", "icmp", "other")},
            "rules": list(self.rules),
            "mitigation": list(self.mitigation),
            "mitigation_mode": self.mitigation_mode,
            "interface": self.interface,
        }
        if self.ended_at is not None:
            d["ended_at"] = iso(self.ended_at)
            d["ended_at_unix"] = round(self.ended_at, 3)
            d["duration_s"] = round(self.ended_at - self.started_at, 3)
        if self.pcap_path:
            d["pcap"] = self.pcap_path
        return d

"""The REST representation of an incident (msgspec Structs), shared by the service and routes.

Request bodies and response envelopes live in the routes module; these are the objects
inside them, also carried by `control.incidents.event_bus.IncidentEvent.incident`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ftcontract.vocabulary import Severity

IncidentStatus = Literal["active", "resolved", "false_positive"]


class NodeRef(msgspec.Struct, kw_only=True):
    uuid: str
    name: str


class TopSource(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ip: str
    pps: float = 0
    bps: float = 0
    country: str | None = None  # ISO 3166 alpha-2, filled by the control plane's geo lookup


class GeoShare(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    country: str  # ISO 3166 alpha-2, or "unknown"
    share: float  # percent of the top sources' packets


class MitigationRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Literal["source", "prefix", "signature", "rate_limit"]
    match: str  # human-readable match, e.g. "udp sport 11211" or "198.51.100.7/32"
    action: Literal["drop", "rate_limit"] = "drop"
    ttl_sec: int | None = None
    dropped_packets: int = 0


class IncidentListItem(msgspec.Struct, kw_only=True):
    uuid: str
    node: NodeRef
    family: str
    subtype: str | None
    severity: Severity
    status: IncidentStatus
    started_at: str
    ended_at: str | None
    peak_pps: float
    peak_bps: float
    duration_sec: int
    # distinct source addresses the agent saw (a lower bound: it counts sampled packets'
    # sources, and at least the top sources listed); only rises
    source_count: int


class IncidentPcap(msgspec.Struct, kw_only=True):
    """The sample capture the agent uploaded for an incident."""

    sha256: str  # hex digest of the file, also sent as X-Content-SHA256 on download
    size: int  # bytes
    uploaded_at: str
    url: str  # the download route, /api/v1/incidents/{uuid}/pcap (workspace token)


class Incident(IncidentListItem, kw_only=True):
    protocols: dict[str, float]  # protocol -> percent share of attack packets
    top_sources: list[TopSource]
    geo_origin: list[GeoShare]
    summary: str  # built by rules from the fields above
    mitigation_rules: list[MitigationRule]
    mitigated_at: str | None
    pcap: IncidentPcap | None  # null until the agent uploads one

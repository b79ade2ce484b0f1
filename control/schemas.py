"""The API's representations of stored things (msgspec Structs), shared by services and routes.

Request bodies and response envelopes live in the route module of their resource; these are
the objects inside them, also carried by `control.events.IncidentEvent.incident`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ftcontract.vocabulary import Severity

NodeStatus = Literal["online", "offline", "attack", "elevated"]
NodePriority = Literal["production", "staging", "development", "normal", "high"]
IncidentStatus = Literal["active", "resolved", "false_positive"]


class Baseline(msgspec.Struct, kw_only=True):
    avg_pps: float
    p95_pps: float
    protocols: dict[str, float]  # protocol -> percent share of packets


class Node(msgspec.Struct, kw_only=True):
    uuid: str
    name: str
    ip: str
    location: str | None
    os: str | None
    interface: str
    priority: NodePriority
    status: NodeStatus
    last_pps: float
    active_incidents: int
    created_at: str
    last_seen: str | None


class NodeDetail(Node, kw_only=True):
    baseline: Baseline | None  # null until the node's agent reports one


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


ChannelType = Literal[
    "discord",
    "slack",
    "email",
    "sms",
    "pagerduty",
    "opsgenie",
    "webhook",
    "teams",
    "telegram",
    "grafana",
    "datadog",
    "prometheus",
]


class Channel(msgspec.Struct, kw_only=True):
    id: int
    name: str
    type: str
    config: dict[str, object]  # secrets masked
    enabled: bool
    created_at: str


class Workspace(msgspec.Struct, kw_only=True):
    name: str
    plan: str
    subscription_status: Literal["active", "past_due", "canceled"]
    node_count: int
    node_limit: int
    created_at: str

"""The REST representation of an incident (msgspec Structs), shared by the service and routes.

Request bodies and response envelopes live in the routes module; these are the objects
inside them, also carried by `control.incidents.event_bus.IncidentEvent.incident`.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

from control.bgp.schemas import UpstreamAnnouncement, UpstreamRefusal
from ftcontract import agent_api
from ftcontract.vocabulary import Family, ResolveReason, RuleAction, RuleKind, Severity

IncidentStatus = Literal["active", "resolved", "false_positive"]
# node: one agent's incident on its node; fleet: the control plane's incident for a group
# of nodes (a declared prefix of the workspace, or the whole workspace)
IncidentScope = Literal["node", "fleet"]
INCIDENT_SCOPES: tuple[IncidentScope, ...] = get_args(IncidentScope)
# A node of a fleet incident's group: reporting its seconds, missing (its points stopped
# arriving), removed (deleted, or no longer in the group)
FleetNodeState = Literal["reporting", "missing", "removed"]


class NodeRef(msgspec.Struct, kw_only=True):
    uuid: str
    name: str


class TopSource(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The contract's SourceFigure plus where the address is (the REST shape)."""

    ip: str
    pps: float = 0
    bps: float = 0
    country: str | None = None  # ISO 3166 alpha-2, filled by the control plane's geo lookup

    @classmethod
    def from_figure(cls, figure: agent_api.SourceFigure) -> TopSource:
        """The one mapping from the agent's figure (the country is looked up later)."""
        return cls(ip=figure.ip, pps=figure.pps, bps=figure.bps)


class GeoShare(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    country: str  # ISO 3166 alpha-2, or "unknown"
    share: float  # percent of the top sources' packets


class MitigationRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The contract's RuleFigure as people read it: the human `match` text and counters,
    without the field-by-field match programs use (the REST shape)."""

    kind: RuleKind
    match: str  # human-readable match, e.g. "udp sport 11211" or "198.51.100.7/32"
    action: RuleAction = "drop"
    ttl_sec: int | None = None
    dropped_packets: int = 0
    # packets the rule let through because a socket of the node wanted them
    spared_packets: int = 0

    @classmethod
    def from_figure(cls, figure: agent_api.RuleFigure) -> MitigationRule:
        """The one mapping from the agent's figure."""
        return cls(
            kind=figure.kind,
            match=figure.match,
            action=figure.action,
            ttl_sec=figure.ttl_sec,
            dropped_packets=figure.dropped_packets,
            spared_packets=figure.spared_packets,
        )


class FleetIncidentNode(msgspec.Struct, kw_only=True):
    """One node of a fleet incident's group: what it carried and what its kernel did."""

    node_uuid: str
    node_name: str
    share: float  # the node's share of the group's attack traffic, 0..1
    peak_pps: float  # the node's own peaks during the incident
    peak_bps: float
    state: FleetNodeState
    # the fleet rules the node reported in force, with their counters (empty: none
    # reported, e.g. an agent that does not know fleet rules)
    rules: list[MitigationRule]
    dropped_packets: int  # summed over the node's fleet rules (cumulative)
    spared_packets: int
    in_force_since: str | None  # when the node's first fleet rule took effect


class IncidentListItem(msgspec.Struct, kw_only=True):
    uuid: str
    # the node of a node incident; null for a fleet incident (see `group` and `nodes`)
    node: NodeRef | None
    family: Family
    subtype: str | None
    severity: Severity
    status: IncidentStatus
    started_at: str
    ended_at: str | None
    peak_pps: float
    peak_bps: float
    duration_sec: int
    # distinct source addresses the agent saw (a lower bound: it counts sampled packets'
    # sources, and at least the top sources listed); only rises. 0 for a fleet incident.
    source_count: int
    scope: IncidentScope = "node"
    # a fleet incident's group: a declared prefix of the workspace, or "workspace"
    group: str | None = None
    # a node incident that opened while a fleet incident of one of its node's groups was
    # active: that fleet incident
    fleet_incident_uuid: str | None = None
    # a fleet incident's nodes, largest share first (empty for a node incident)
    nodes: list[FleetIncidentNode] = []


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
    # The highest rate over one detection window (100 ms by default); peak_pps/peak_bps
    # are the highest one-second rates. Defaults: incidents stored before they existed.
    peak_burst_pps: float = 0.0
    peak_burst_bps: float = 0.0
    # why the agent resolved it (cooled_down, agent_stopped, agent_restarted); null while
    # active and when a person closed it
    end_reason: ResolveReason | None = None
    # Upstream mitigation (BGP): what was announced for this incident (in force or past)
    # and the escalations that announced nothing, with their reasons.
    announcements: list[UpstreamAnnouncement] = []
    upstream_refusals: list[UpstreamRefusal] = []

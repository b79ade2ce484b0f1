"""An incident as the REST API shows it, built from its stored row (with its node and pcap).

The summary and geo origin are derived here, on read, from the stored figures. A fleet
incident has no node (node_id NULL): its node columns read NULL through the LEFT JOIN and
its nodes come from fleet_incident_nodes (`fleet_nodes_of`).
"""

from __future__ import annotations

import json

import aiosqlite
import msgspec

from control.core import clock
from control.incidents.geo import geo_origin
from control.incidents.schemas import (
    FleetIncidentNode,
    Incident,
    IncidentListItem,
    IncidentPcap,
    MitigationRule,
    NodeRef,
    TopSource,
)
from control.incidents.summary import build_fleet_summary, build_summary
from ftcontract import agent_api

# One incident in full: its row, its node's uuid and name (NULL for a fleet incident), the
# fleet incident it is linked to, and its pcap if uploaded.
SELECT_DETAIL = """
SELECT i.*, n.uuid AS node_uuid, n.name AS node_name, f.uuid AS fleet_incident_uuid,
       p.sha256 AS pcap_sha256, p.size AS pcap_size, p.uploaded_at AS pcap_uploaded_at
FROM incidents i LEFT JOIN nodes n ON n.id = i.node_id
LEFT JOIN incidents f ON f.id = i.fleet_incident_id
LEFT JOIN incident_pcaps p ON p.incident_id = i.id
"""
# The columns a list item needs (no JSON columns to decode).
SELECT_LIST_ITEM = """
SELECT i.id, i.uuid, i.family, i.subtype, i.severity, i.status, i.started_at, i.ended_at,
       i.peak_pps, i.peak_bps, i.source_count, i.scope, i.group_key,
       n.uuid AS node_uuid, n.name AS node_name, f.uuid AS fleet_incident_uuid
FROM incidents i LEFT JOIN nodes n ON n.id = i.node_id
LEFT JOIN incidents f ON f.id = i.fleet_incident_id
"""
# The nodes of fleet incidents (a deleted node keeps its row: its figures stay readable).
_SELECT_FLEET_NODES = """
SELECT fn.incident_id, n.uuid AS node_uuid, n.name AS node_name, fn.share, fn.peak_pps,
       fn.peak_bps, fn.state, fn.rules, fn.dropped_packets, fn.spared_packets,
       fn.in_force_since
FROM fleet_incident_nodes fn JOIN nodes n ON n.id = fn.node_id
WHERE fn.incident_id IN ({marks})
ORDER BY fn.incident_id, fn.share DESC, n.name
"""


async def fleet_nodes_of(
    db: aiosqlite.Connection, incident_ids: list[int]
) -> dict[int, list[FleetIncidentNode]]:
    """The nodes of the given fleet incidents (one query), largest share first."""
    found: dict[int, list[FleetIncidentNode]] = {}
    if not incident_ids:
        return found
    marks = ", ".join("?" * len(incident_ids))
    async with db.execute(_SELECT_FLEET_NODES.format(marks=marks), incident_ids) as cur:
        rows = await cur.fetchall()
    for r in rows:
        figures = msgspec.json.decode(r["rules"], type=list[agent_api.RuleFigure])
        found.setdefault(r["incident_id"], []).append(
            FleetIncidentNode(
                node_uuid=r["node_uuid"],
                node_name=r["node_name"],
                share=r["share"],
                peak_pps=r["peak_pps"],
                peak_bps=r["peak_bps"],
                state=r["state"],
                rules=[MitigationRule.from_figure(f) for f in figures],
                dropped_packets=r["dropped_packets"],
                spared_packets=r["spared_packets"],
                in_force_since=clock.iso(r["in_force_since"]),
            )
        )
    return found


def _duration(row: aiosqlite.Row, now: float) -> int:
    end = row["ended_at"] if row["ended_at"] is not None else now
    return max(0, int(end - row["started_at"]))


def list_item_from_row(
    row: aiosqlite.Row, now: float, nodes: list[FleetIncidentNode] | None = None
) -> IncidentListItem:
    fleet = row["scope"] == "fleet"
    return IncidentListItem(
        uuid=row["uuid"],
        node=None if fleet else NodeRef(uuid=row["node_uuid"], name=row["node_name"]),
        family=row["family"],
        subtype=row["subtype"],
        severity=row["severity"],
        status=row["status"],
        started_at=clock.iso(row["started_at"]) or "",
        ended_at=clock.iso(row["ended_at"]),
        peak_pps=row["peak_pps"],
        peak_bps=row["peak_bps"],
        duration_sec=_duration(row, now),
        source_count=row["source_count"],
        scope=row["scope"],
        group=row["group_key"],
        fleet_incident_uuid=row["fleet_incident_uuid"],
        nodes=nodes or [],
    )


def pcap_url(incident_uuid: str) -> str:
    return f"/api/v1/incidents/{incident_uuid}/pcap"


def _pcap(row: aiosqlite.Row) -> IncidentPcap | None:
    if row["pcap_sha256"] is None:
        return None
    return IncidentPcap(
        sha256=row["pcap_sha256"],
        size=row["pcap_size"],
        uploaded_at=clock.iso(row["pcap_uploaded_at"]) or "",
        url=pcap_url(row["uuid"]),
    )


def incident_from_row(
    row: aiosqlite.Row, now: float, nodes: list[FleetIncidentNode] | None = None
) -> Incident:
    protocols = json.loads(row["protocols"])
    sources = msgspec.json.decode(row["top_sources"], type=list[TopSource])
    rules = msgspec.json.decode(row["mitigation_rules"], type=list[MitigationRule])
    origin = geo_origin(sources)
    duration = _duration(row, now)
    if row["scope"] == "fleet":
        summary = build_fleet_summary(
            group=row["group_key"],
            nodes=nodes or [],
            family=row["family"],
            subtype=row["subtype"],
            severity=row["severity"],
            status=row["status"],
            peak_pps=row["peak_pps"],
            peak_bps=row["peak_bps"],
            duration_sec=duration,
            protocols=protocols,
        )
    else:
        summary = build_summary(
            node_name=row["node_name"],
            family=row["family"],
            subtype=row["subtype"],
            severity=row["severity"],
            status=row["status"],
            peak_pps=row["peak_pps"],
            peak_bps=row["peak_bps"],
            duration_sec=duration,
            protocols=protocols,
            top_sources=sources,
            geo_origin=origin,
            mitigation_rules=rules,
        )
    item = list_item_from_row(row, now, nodes)
    return Incident(
        **{f: getattr(item, f) for f in item.__struct_fields__},
        protocols=protocols,
        top_sources=sources,
        geo_origin=origin,
        summary=summary,
        mitigation_rules=rules,
        mitigated_at=clock.iso(row["mitigated_at"]),
        pcap=_pcap(row),
        peak_burst_pps=row["peak_burst_pps"],
        peak_burst_bps=row["peak_burst_bps"],
        end_reason=row["end_reason"],
    )

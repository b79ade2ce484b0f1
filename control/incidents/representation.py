"""An incident as the REST API shows it, built from its stored row (with its node and pcap).

The summary and geo origin are derived here, on read, from the stored figures.
"""

from __future__ import annotations

import json

import aiosqlite
import msgspec

from control.core import clock
from control.incidents.geo import geo_origin
from control.incidents.schemas import (
    Incident,
    IncidentListItem,
    IncidentPcap,
    MitigationRule,
    NodeRef,
    TopSource,
)
from control.incidents.summary import build_summary

# One incident in full: its row, its node's uuid and name, and its pcap if uploaded.
SELECT_DETAIL = """
SELECT i.*, n.uuid AS node_uuid, n.name AS node_name,
       p.sha256 AS pcap_sha256, p.size AS pcap_size, p.uploaded_at AS pcap_uploaded_at
FROM incidents i JOIN nodes n ON n.id = i.node_id
LEFT JOIN incident_pcaps p ON p.incident_id = i.id
"""
# The columns a list item needs (no JSON columns to decode).
SELECT_LIST_ITEM = """
SELECT i.uuid, i.family, i.subtype, i.severity, i.status, i.started_at, i.ended_at,
       i.peak_pps, i.peak_bps, i.source_count, n.uuid AS node_uuid, n.name AS node_name
FROM incidents i JOIN nodes n ON n.id = i.node_id
"""


def _duration(row: aiosqlite.Row, now: float) -> int:
    end = row["ended_at"] if row["ended_at"] is not None else now
    return max(0, int(end - row["started_at"]))


def list_item_from_row(row: aiosqlite.Row, now: float) -> IncidentListItem:
    return IncidentListItem(
        uuid=row["uuid"],
        node=NodeRef(uuid=row["node_uuid"], name=row["node_name"]),
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


def incident_from_row(row: aiosqlite.Row, now: float) -> Incident:
    protocols = json.loads(row["protocols"])
    sources = msgspec.json.decode(row["top_sources"], type=list[TopSource])
    rules = msgspec.json.decode(row["mitigation_rules"], type=list[MitigationRule])
    origin = geo_origin(sources)
    duration = _duration(row, now)
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
    item = list_item_from_row(row, now)
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

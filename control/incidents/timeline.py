"""GET /api/v1/incidents/{uuid}/timeline: the node's traffic over one incident, for its
page's chart.

The metrics store keeps every one-second point for `raw_retention_s` (1 h) and one-minute
roll-ups for 90 days (control.agentapi.metrics_store). The timeline uses the one-second
points wherever they are still kept, so a fresh incident draws at once (roll-ups alone
left it empty for its first minute), and the roll-ups for the part of the span that is
older: each point says how many seconds it covers.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Literal

import aiosqlite
import msgspec

from control.core import clock
from control.core.errors import NotFound

# Traffic shown before the start and after the end: the rise and the fall.
MARGIN_S = 60


class TimelinePoint(msgspec.Struct, kw_only=True):
    t: str  # start of the interval
    step_sec: Literal[1, 60]  # one stored second, or a one-minute roll-up
    pps: float  # average over the interval
    pps_max: float
    bps: float
    dropped_pps: float


class IncidentTimeline(msgspec.Struct, kw_only=True):
    ok: bool
    incident_uuid: str
    node_uuid: str
    since: str  # the span shown: MARGIN_S around the incident (its end: now if active)
    until: str
    # From here on the points are one-second points (older ones: one-minute roll-ups).
    seconds_since: str
    points: list[TimelinePoint]


_SPAN = """
SELECT i.uuid, i.node_id, n.uuid AS node_uuid, i.started_at, i.ended_at
FROM incidents i LEFT JOIN nodes n ON n.id = i.node_id
WHERE i.workspace_id = :ws AND i.uuid = :uuid
"""
_MINUTES = """
SELECT minute AS t, pps_avg AS pps, pps_max, bps_avg AS bps, dropped_pps_avg AS dropped
FROM node_metrics_minute
WHERE node_id = :node AND minute >= :since AND minute < :until
ORDER BY minute
"""
_SECONDS = """
SELECT ts AS t, pps, pps AS pps_max, bps, dropped_pps AS dropped
FROM node_metrics_raw
WHERE node_id = :node AND ts >= :since AND ts <= :until
ORDER BY ts
"""


def _point(r: sqlite3.Row, step: Literal[1, 60]) -> TimelinePoint:
    return TimelinePoint(
        t=clock.iso(r["t"]) or "",
        step_sec=step,
        pps=r["pps"],
        pps_max=r["pps_max"],
        bps=r["bps"],
        dropped_pps=r["dropped"],
    )


async def incident_timeline(
    db: aiosqlite.Connection, workspace_id: int, incident_uuid: str, raw_retention_s: float
) -> IncidentTimeline:
    rows = list(await db.execute_fetchall(_SPAN, {"ws": workspace_id, "uuid": incident_uuid}))
    if not rows:
        raise NotFound("incident not found")
    row = rows[0]
    if row["node_id"] is None:
        raise NotFound("a fleet incident has no timeline of its own: see each node's traffic")
    now = clock.now()
    since = math.floor(row["started_at"]) - MARGIN_S
    until = math.ceil(min(row["ended_at"] or now, now)) + MARGIN_S
    # One-second points from the first whole minute they are all still kept (the store
    # prunes them after raw_retention_s); before that, whole minutes of roll-ups.
    kept_from = math.ceil(now - raw_retention_s)
    seconds_since = since if since >= kept_from else (kept_from + 59) // 60 * 60
    node = row["node_id"]
    minutes = (
        await db.execute_fetchall(
            _MINUTES, {"node": node, "since": since // 60 * 60, "until": seconds_since}
        )
        if seconds_since > since
        else []
    )
    seconds = await db.execute_fetchall(
        _SECONDS, {"node": node, "since": seconds_since, "until": until}
    )
    points = [_point(r, 60) for r in minutes] + [_point(r, 1) for r in seconds]
    return IncidentTimeline(
        ok=True,
        incident_uuid=row["uuid"],
        node_uuid=row["node_uuid"],
        since=clock.iso(since) or "",
        until=clock.iso(until) or "",
        seconds_since=clock.iso(seconds_since) or "",
        points=points,
    )

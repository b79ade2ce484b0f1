"""Incident analytics over a time range: totals by family, severity and node, peak, time,
plus the workspace's traffic over the same range from the agents' one-minute roll-ups.

False positives are counted apart (`false_positives`) and left out of every other incident
figure: they were not attacks. Traffic roll-ups are kept 90 days (see control.agentapi), so
a 365d summary's traffic covers at most the last 90 days.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import aiosqlite
import msgspec

from control.core import clock
from ftcontract.vocabulary import SEVERITIES

AnalyticsRange = Literal["7d", "30d", "90d", "365d"]
RANGE_DAYS: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}


class NodeIncidents(msgspec.Struct, kw_only=True):
    uuid: str
    name: str
    incidents: int


class TrafficFigures(msgspec.Struct, kw_only=True):
    """The workspace's traffic over the range (every node's one-minute roll-ups).

    Averages and peaks are null when no node reported in the range.
    """

    avg_pps: float | None  # all nodes together, averaged over the minutes with data
    peak_pps: float | None  # the highest one-second rate a single node reported
    avg_bps: float | None
    peak_bps: float | None
    attack_minutes: int  # node-minutes with at least one second under attack
    nodes_reporting: int  # nodes with any roll-up in the range


class AnalyticsSummary(msgspec.Struct, kw_only=True):
    range: str
    since: str
    until: str
    incidents_total: int  # node and fleet incidents
    # of incidents_total, the fleet incidents (a group's attack, no one node: not in by_node)
    fleet_incidents: int
    false_positives: int
    by_family: dict[str, int]
    by_severity: dict[str, int]  # every severity present, zero when none
    by_node: list[NodeIncidents]  # nodes with incidents, most first
    peak_pps: float
    total_attack_sec: int  # active incidents count up to now
    mean_time_to_mitigate_sec: float | None  # start -> first mitigation rule; null if none
    traffic: TrafficFigures


async def traffic(db: aiosqlite.Connection, workspace_id: int, since: float) -> TrafficFigures:
    """Roll-ups of every node of the workspace (deleted ones too: their traffic happened).

    A node-minute missing from the roll-ups counts as no traffic in the averages.
    """
    async with db.execute(
        """SELECT count(DISTINCT m.minute) AS minutes, count(DISTINCT m.node_id) AS nodes,
                  sum(m.pps_avg) AS pps_sum, sum(m.bps_avg) AS bps_sum,
                  max(m.pps_max) AS pps_max, max(m.bps_max) AS bps_max,
                  sum(m.attack_samples > 0) AS attack_minutes
           FROM nodes n JOIN node_metrics_minute m ON m.node_id = n.id
           WHERE n.workspace_id = :ws AND m.minute >= :since""",
        {"ws": workspace_id, "since": int(since)},
    ) as cur:
        row = await cur.fetchone()
    minutes = int(row["minutes"]) if row is not None else 0
    if row is None or minutes == 0:
        return TrafficFigures(
            avg_pps=None,
            peak_pps=None,
            avg_bps=None,
            peak_bps=None,
            attack_minutes=0,
            nodes_reporting=0,
        )
    return TrafficFigures(
        avg_pps=round(row["pps_sum"] / minutes, 3),
        peak_pps=row["pps_max"],
        avg_bps=round(row["bps_sum"] / minutes, 3),
        peak_bps=row["bps_max"],
        attack_minutes=int(row["attack_minutes"]),
        nodes_reporting=int(row["nodes"]),
    )


async def summary(
    db: aiosqlite.Connection, workspace_id: int, range_: AnalyticsRange
) -> AnalyticsSummary:
    until = clock.now()
    since = until - RANGE_DAYS[range_] * 86400
    # One pass over the range, grouped finely; the totals are folded here.
    async with db.execute(
        """SELECT i.status = 'false_positive' AS fp, i.family, i.severity, i.node_id,
                  count(*) AS n, max(i.peak_pps) AS peak,
                  sum(coalesce(i.ended_at, :now) - i.started_at) AS attack_sec,
                  sum(i.mitigated_at - i.started_at) AS mitigate_sec,
                  count(i.mitigated_at) AS mitigated
           FROM incidents i WHERE i.workspace_id = :ws AND i.started_at >= :since
           GROUP BY fp, i.family, i.severity, i.node_id""",
        {"ws": workspace_id, "since": since, "now": until},
    ) as cur:
        groups = await cur.fetchall()
    by_family: Counter[str] = Counter()
    by_severity: Counter[str] = Counter(dict.fromkeys(SEVERITIES, 0))
    by_node_id: Counter[int] = Counter()
    fleet_incidents = 0
    false_positives = 0
    peak = attack_sec = mitigate_sec = 0.0
    mitigated = 0
    for g in groups:
        if g["fp"]:
            false_positives += g["n"]
            continue
        by_family[g["family"]] += g["n"]
        by_severity[g["severity"]] += g["n"]
        if g["node_id"] is None:  # a fleet incident (scope 'fleet' has no node)
            fleet_incidents += g["n"]
        else:
            by_node_id[g["node_id"]] += g["n"]
        peak = max(peak, g["peak"])
        attack_sec += g["attack_sec"]
        mitigate_sec += g["mitigate_sec"] or 0.0
        mitigated += g["mitigated"]
    names: dict[int, aiosqlite.Row] = {}
    if by_node_id:
        marks = ",".join("?" * len(by_node_id))
        async with db.execute(
            f"SELECT id, uuid, name FROM nodes WHERE workspace_id = ? AND id IN ({marks})",  # noqa: S608
            [workspace_id, *by_node_id],
        ) as cur:
            names = {row["id"]: row for row in await cur.fetchall()}
    nodes = [
        NodeIncidents(uuid=names[node_id]["uuid"], name=names[node_id]["name"], incidents=count)
        for node_id, count in by_node_id.items()
    ]
    nodes.sort(key=lambda n: (-n.incidents, n.name))
    return AnalyticsSummary(
        range=range_,
        since=clock.iso(since) or "",
        until=clock.iso(until) or "",
        incidents_total=sum(by_family.values()),
        fleet_incidents=fleet_incidents,
        false_positives=false_positives,
        by_family=dict(sorted(by_family.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_severity={severity: by_severity[severity] for severity in SEVERITIES},
        by_node=nodes,
        peak_pps=peak,
        total_attack_sec=max(0, int(attack_sec)),
        mean_time_to_mitigate_sec=round(mitigate_sec / mitigated, 3) if mitigated else None,
        traffic=await traffic(db, workspace_id, since),
    )

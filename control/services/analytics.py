"""Incident analytics over a time range: totals by family, severity and node, peak, time.

False positives are counted apart (`false_positives`) and left out of every other figure:
they were not attacks.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import aiosqlite
import msgspec

from control import clock

AnalyticsRange = Literal["7d", "30d", "90d", "365d"]
RANGE_DAYS: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
SEVERITIES = ("low", "medium", "high", "critical")


class NodeIncidents(msgspec.Struct, kw_only=True):
    uuid: str
    name: str
    incidents: int


class AnalyticsSummary(msgspec.Struct, kw_only=True):
    range: str
    since: str
    until: str
    incidents_total: int
    false_positives: int
    by_family: dict[str, int]
    by_severity: dict[str, int]  # every severity present, zero when none
    by_node: list[NodeIncidents]  # nodes with incidents, most first
    peak_pps: float
    total_attack_sec: int  # active incidents count up to now
    mean_time_to_mitigate_sec: float | None  # start -> first mitigation rule; null if none


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
    false_positives = 0
    peak = attack_sec = mitigate_sec = 0.0
    mitigated = 0
    for g in groups:
        if g["fp"]:
            false_positives += g["n"]
            continue
        by_family[g["family"]] += g["n"]
        by_severity[g["severity"]] += g["n"]
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
        false_positives=false_positives,
        by_family=dict(sorted(by_family.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_severity={severity: by_severity[severity] for severity in SEVERITIES},
        by_node=nodes,
        peak_pps=peak,
        total_attack_sec=max(0, int(attack_sec)),
        mean_time_to_mitigate_sec=round(mitigate_sec / mitigated, 3) if mitigated else None,
    )

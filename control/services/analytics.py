"""Incident analytics over a time range: totals by family, severity and node, peak, time.

False positives are counted apart (`false_positives`) and left out of every other figure:
they were not attacks.
"""

from __future__ import annotations

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
    scope = "i.workspace_id = :ws AND i.started_at >= :since"
    attacks = scope + " AND i.status != 'false_positive'"
    params = {"ws": workspace_id, "since": since, "now": until}

    async def rows(sql: str) -> list[aiosqlite.Row]:
        async with db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    (totals,) = await rows(
        f"""SELECT count(*) FILTER (WHERE i.status != 'false_positive') AS total,
                   count(*) FILTER (WHERE i.status = 'false_positive') AS false_positives,
                   coalesce(max(i.peak_pps) FILTER (WHERE i.status != 'false_positive'), 0)
                       AS peak_pps,
                   coalesce(sum(coalesce(i.ended_at, :now) - i.started_at)
                       FILTER (WHERE i.status != 'false_positive'), 0) AS attack_sec,
                   avg(i.mitigated_at - i.started_at)
                       FILTER (WHERE i.status != 'false_positive' AND i.mitigated_at IS NOT NULL)
                       AS mttm
            FROM incidents i WHERE {scope}"""  # noqa: S608 (fixed fragments)
    )
    by_family = await rows(
        f"SELECT i.family, count(*) AS n FROM incidents i WHERE {attacks} "  # noqa: S608
        "GROUP BY i.family ORDER BY n DESC, i.family"
    )
    by_severity = await rows(
        f"SELECT i.severity, count(*) AS n FROM incidents i WHERE {attacks} "  # noqa: S608
        "GROUP BY i.severity"
    )
    by_node = await rows(
        f"""SELECT n.uuid, n.name, count(*) AS n FROM incidents i
            JOIN nodes n ON n.id = i.node_id WHERE {attacks}
            GROUP BY i.node_id ORDER BY n DESC, n.name"""  # noqa: S608
    )
    severity_counts = dict.fromkeys(SEVERITIES, 0)
    severity_counts.update({r["severity"]: int(r["n"]) for r in by_severity})
    mttm = totals["mttm"]
    return AnalyticsSummary(
        range=range_,
        since=clock.iso(since) or "",
        until=clock.iso(until) or "",
        incidents_total=int(totals["total"]),
        false_positives=int(totals["false_positives"]),
        by_family={r["family"]: int(r["n"]) for r in by_family},
        by_severity=severity_counts,
        by_node=[
            NodeIncidents(uuid=r["uuid"], name=r["name"], incidents=int(r["n"])) for r in by_node
        ],
        peak_pps=float(totals["peak_pps"]),
        total_attack_sec=max(0, int(totals["attack_sec"])),
        mean_time_to_mitigate_sec=round(float(mttm), 3) if mttm is not None else None,
    )

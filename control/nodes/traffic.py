"""REST API v1: GET /api/v1/nodes/{uuid}/traffic, history from the one-minute roll-ups
the Agent API's metrics store keeps (control.agentapi.metrics_store)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.params import FromPath, QueryParameter

from control.agentapi import node_control
from control.core import clock
from control.core.db import SqlParams
from control.core.deps import CallerDep, Db

TrafficRange = Literal["1h", "24h", "7d", "30d", "90d"]
# range -> (seconds covered, seconds per returned point)
_RANGES: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "24h": (86400, 300),
    "7d": (7 * 86400, 3600),
    "30d": (30 * 86400, 3 * 3600),
    "90d": (90 * 86400, 6 * 3600),
}


class TrafficPoint(msgspec.Struct, kw_only=True):
    t: str  # start of the interval
    pps_avg: float
    pps_max: float
    bps_avg: float
    bps_max: float
    dropped_pps_avg: float


class Traffic(msgspec.Struct, kw_only=True):
    ok: bool
    range: str
    step_sec: int
    pps_avg: float | None
    pps_max: float | None
    bps_max: float | None
    attack_minutes: int
    points: list[TrafficPoint]


@get(
    "/nodes/{node_uuid:str}/traffic",
    tags=["nodes"],
    summary="Traffic history from one-minute roll-ups",
)
async def traffic(
    node_uuid: FromPath[str],
    caller: CallerDep,
    db: Db,
    range_: Annotated[TrafficRange, QueryParameter(name="range")] = "24h",
) -> Traffic:
    span, step = _RANGES[range_]
    node_id = await node_control.live_node_id(db, caller.workspace_id, node_uuid)
    since = int(clock.now()) - span
    params: SqlParams = {"node": node_id, "since": since, "step": step}
    points = [
        TrafficPoint(
            t=clock.iso(r["bucket"]) or "",
            pps_avg=r["pps_avg"],
            pps_max=r["pps_max"],
            bps_avg=r["bps_avg"],
            bps_max=r["bps_max"],
            dropped_pps_avg=r["dropped"],
        )
        for r in await db.execute_fetchall(
            """SELECT minute / :step * :step AS bucket,
                      sum(pps_avg * samples) / sum(samples) AS pps_avg, max(pps_max) AS pps_max,
                      sum(bps_avg * samples) / sum(samples) AS bps_avg, max(bps_max) AS bps_max,
                      sum(dropped_pps_avg * samples) / sum(samples) AS dropped
               FROM node_metrics_minute WHERE node_id = :node AND minute >= :since
               GROUP BY bucket ORDER BY bucket""",
            params,
        )
    ]
    (totals,) = list(
        await db.execute_fetchall(
            """SELECT sum(pps_avg * samples) / sum(samples) AS pps_avg,
                      max(pps_max) AS pps_max, max(bps_max) AS bps_max,
                      sum(attack_samples > 0) AS attack_minutes
               FROM node_metrics_minute WHERE node_id = :node AND minute >= :since""",
            params,
        )
    )
    return Traffic(
        ok=True,
        range=range_,
        step_sec=step,
        pps_avg=totals["pps_avg"],
        pps_max=totals["pps_max"],
        bps_max=totals["bps_max"],
        attack_minutes=int(totals["attack_minutes"] or 0),
        points=points,
    )

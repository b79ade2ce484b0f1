"""The charts' history when a page opens: the last minutes of stored one-second points.

A live stream sends it once, right after subscribing (so nothing published later is
missed), from the raw points the Agent API stored (an acknowledged point is on disk):
one database read per opened page, none per second. The page then adds the live points.

The node page gets the node's points (the live point of a second it already has replaces
it). The overview draws totals over the workspace's nodes: seconds before `cutoff` come
summed; the newest seconds come per node, because a point written just before the read
may also arrive live, and the page keeps one value per (node, second) there.
"""

from __future__ import annotations

import math

import aiosqlite
import msgspec

from control.dashboard.live import LivePoint

WINDOW_S = 300  # the pages' chart window (dash.js WINDOW_S)
RECENT_S = 10  # overview: this many newest seconds come per node, not summed

_NODE_POINTS = """
SELECT r.ts, r.pps, r.bps, r.dropped_pps, r.dropped_bps, r.tcp_pps, r.udp_pps, r.icmp_pps,
       r.other_pps, r.fragment_pps, r.attack, r.baseline_avg_pps, r.baseline_p95_pps
FROM nodes n JOIN node_metrics_raw r ON r.node_id = n.id
WHERE n.workspace_id = ? AND n.uuid = ? AND r.ts >= ?
ORDER BY r.ts
"""
_WORKSPACE_TOTALS = """
SELECT r.ts, sum(r.pps), sum(r.dropped_pps)
FROM nodes n JOIN node_metrics_raw r ON r.node_id = n.id
WHERE n.workspace_id = ? AND n.deleted_at IS NULL AND r.ts >= ? AND r.ts < ?
GROUP BY r.ts ORDER BY r.ts
"""
_WORKSPACE_RECENT = """
SELECT n.uuid, r.ts, r.pps, r.dropped_pps
FROM nodes n JOIN node_metrics_raw r ON r.node_id = n.id
WHERE n.workspace_id = ? AND n.deleted_at IS NULL AND r.ts >= ?
ORDER BY r.ts
"""
PROTOCOL_COLUMNS = ("tcp", "udp", "icmp", "other", "fragment")


class NodeBackfill(msgspec.Struct, kw_only=True):
    points: list[LivePoint]  # oldest first


class SecondTotal(msgspec.Struct, array_like=True):
    """[ts, pps, dropped_pps] summed over the workspace's nodes (compact: 300 of them)."""

    ts: int
    pps: float
    dropped_pps: float


class NodeSecond(msgspec.Struct, array_like=True):
    """[node, ts, pps, dropped_pps] of one node."""

    node: str
    ts: int
    pps: float
    dropped_pps: float


class WorkspaceBackfill(msgspec.Struct, kw_only=True):
    cutoff: int  # totals hold the seconds before it; points the seconds from it on
    totals: list[SecondTotal]
    points: list[NodeSecond]


async def node_backfill(
    db: aiosqlite.Connection, workspace_id: int, node_uuid: str, now: float
) -> NodeBackfill:
    async with db.execute(_NODE_POINTS, (workspace_id, node_uuid, int(now) - WINDOW_S)) as cur:
        rows = await cur.fetchall()
    points = []
    for r in rows:
        protocols = {name: float(r[5 + i]) for i, name in enumerate(PROTOCOL_COLUMNS)}
        points.append(
            LivePoint(
                node=node_uuid,
                ts=float(r[0]),
                pps=float(r[1]),
                bps=float(r[2]),
                dropped_pps=float(r[3]),
                dropped_bps=float(r[4]),
                protocols={k: v for k, v in protocols.items() if v},
                attack=bool(r[10]),
                baseline_avg_pps=r[11],
                baseline_p95_pps=r[12],
            )
        )
    return NodeBackfill(points=points)


async def workspace_backfill(
    db: aiosqlite.Connection, workspace_id: int, now: float
) -> WorkspaceBackfill:
    cutoff = math.floor(now) - RECENT_S
    async with db.execute(
        _WORKSPACE_TOTALS, (workspace_id, math.floor(now) - WINDOW_S, cutoff)
    ) as cur:
        totals = [SecondTotal(int(r[0]), float(r[1]), float(r[2])) for r in await cur.fetchall()]
    async with db.execute(_WORKSPACE_RECENT, (workspace_id, cutoff)) as cur:
        points = [
            NodeSecond(str(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in await cur.fetchall()
        ]
    return WorkspaceBackfill(cutoff=cutoff, totals=totals, points=points)

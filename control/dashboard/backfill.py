"""The charts' history when a page opens: its last minutes, sent once by its live stream
right after subscribing (so nothing published later is missed); the page then adds the
live points.

The node page: the node's stored one-second points (an acknowledged point is on disk),
one database read per opened page, none per second; a point stored just before the read
may also come live, and the page keeps one point per second. The overview: the hub's
running per-second totals of the workspace (control/dashboard/totals.py), copied in the
same step as subscribing, so no point is in both or in neither.
"""

from __future__ import annotations

import aiosqlite
import msgspec

from control.dashboard.live import LiveHub, LivePoint
from control.dashboard.totals import WINDOW_S, SecondTotal

_NODE_POINTS = """
SELECT r.ts, r.pps, r.bps, r.dropped_pps, r.dropped_bps, r.tcp_pps, r.udp_pps, r.icmp_pps,
       r.other_pps, r.fragment_pps, r.attack, r.baseline_avg_pps, r.baseline_p95_pps
FROM nodes n JOIN node_metrics_raw r ON r.node_id = n.id
WHERE n.workspace_id = ? AND n.uuid = ? AND r.ts >= ?
ORDER BY r.ts
"""
PROTOCOL_COLUMNS = ("tcp", "udp", "icmp", "other", "fragment")


class NodeBackfill(msgspec.Struct, kw_only=True):
    points: list[LivePoint]  # oldest first


class WorkspaceBackfill(msgspec.Struct, kw_only=True):
    totals: list[SecondTotal]  # oldest first


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


def workspace_backfill(hub: LiveHub, workspace_id: int) -> WorkspaceBackfill:
    return WorkspaceBackfill(totals=hub.totals.snapshot(workspace_id))

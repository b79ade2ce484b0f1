"""Per workspace, the last minutes of pps and dropped pps summed over its nodes, in memory.

The overview's chart draws these totals. Summing the stored points of every node when a
page opens costs about half a second at 1,000 nodes (300,000 rows); kept as the Agent
API ingests, it costs a few additions per point, and a page that opens takes a copy of
300 numbers pairs. The totals follow the newest second a workspace reported: seconds
older than the window are dropped. A node's second is counted once: a resent or replayed
point of a second the node already reported is left out (so is an older one). After a
restart the totals start empty (the node page's history is read from the stored points).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ftcontract.agent_api import MetricPoint

WINDOW_S = 300  # the pages' chart window (dash.js WINDOW_S)


class SecondTotal(msgspec.Struct, array_like=True):
    """[ts, pps, dropped_pps] summed over the workspace's nodes (compact on the wire)."""

    ts: int
    pps: float
    dropped_pps: float


class _Workspace:
    __slots__ = ("last_by_node", "newest", "seconds")

    def __init__(self) -> None:
        self.seconds: dict[int, list[float]] = {}  # second -> [pps, dropped_pps]
        self.last_by_node: dict[str, int] = {}  # node uuid -> newest second counted
        self.newest = 0


class WorkspaceTotals:
    def __init__(self, window_s: int = WINDOW_S) -> None:
        self.window_s = window_s
        self._workspaces: dict[int, _Workspace] = {}

    def add(self, workspace_id: int, node_uuid: str, points: Iterable[MetricPoint]) -> None:
        ws = self._workspaces.setdefault(workspace_id, _Workspace())
        last = ws.last_by_node.get(node_uuid, -1)
        for p in sorted(points, key=lambda p: p.ts):
            second = int(p.ts)
            if second <= last or second <= ws.newest - self.window_s:
                continue  # counted already, or older than the window
            last = second
            total = ws.seconds.setdefault(second, [0.0, 0.0])
            total[0] += p.pps
            total[1] += p.dropped_pps
            if second > ws.newest:
                ws.newest = second
        ws.last_by_node[node_uuid] = last
        if len(ws.seconds) > self.window_s + 60:  # prune in batches, not per point
            oldest = ws.newest - self.window_s
            ws.seconds = {s: v for s, v in ws.seconds.items() if s > oldest}

    def snapshot(self, workspace_id: int) -> list[SecondTotal]:
        ws = self._workspaces.get(workspace_id)
        if ws is None:
            return []
        oldest = ws.newest - self.window_s
        return [SecondTotal(s, v[0], v[1]) for s, v in sorted(ws.seconds.items()) if s > oldest]

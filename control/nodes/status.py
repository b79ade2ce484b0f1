"""REST API v1 status overview: every node's status and an overall verdict.

overall: under_attack when any node has an active incident or a fleet incident (an attack
on a group of nodes) is active, degraded when any node is offline or elevated, operational
otherwise (also with no nodes at all). A node's own status and `active_incidents` are about
its own incidents only.
nodes_online counts every node that reports (online, elevated or under attack).
"""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import get

from control.core.deps import CallerDep, Db, NodePolicyDep
from control.nodes.schemas import NodeStatus
from control.nodes.service import all_nodes


class NodeStatusItem(msgspec.Struct, kw_only=True):
    uuid: str
    name: str
    status: NodeStatus
    pps: float
    active_incidents: int


class StatusOverview(msgspec.Struct, kw_only=True):
    ok: bool
    overall: Literal["operational", "degraded", "under_attack"]
    nodes_total: int
    nodes_online: int
    under_attack: int  # nodes with an active incident of their own
    fleet_incidents_active: int  # active fleet incidents of the workspace
    nodes: list[NodeStatusItem]


@get("/status", tags=["status"], summary="Status overview of every node")
async def status_overview(caller: CallerDep, db: Db, node_policy: NodePolicyDep) -> StatusOverview:
    nodes = await all_nodes(db, caller.workspace_id, node_policy)
    statuses = [n.status for n in nodes]
    attacked = statuses.count("attack")
    async with db.execute(
        "SELECT count(*) FROM incidents "
        "WHERE workspace_id = ? AND scope = 'fleet' AND status = 'active'",
        (caller.workspace_id,),
    ) as cur:
        row = await cur.fetchone()
    fleet_active = int(row[0]) if row else 0
    overall: Literal["operational", "degraded", "under_attack"] = "operational"
    if attacked or fleet_active:
        overall = "under_attack"
    elif "offline" in statuses or "elevated" in statuses:
        overall = "degraded"
    return StatusOverview(
        ok=True,
        overall=overall,
        nodes_total=len(nodes),
        nodes_online=len(nodes) - statuses.count("offline"),
        under_attack=attacked,
        fleet_incidents_active=fleet_active,
        nodes=[
            NodeStatusItem(
                uuid=n.uuid,
                name=n.name,
                status=n.status,
                pps=n.last_pps,
                active_incidents=n.active_incidents,
            )
            for n in nodes
        ],
    )

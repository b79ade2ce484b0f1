"""GET /metrics: Prometheus exposition of ftcontrol_* gauges plus Litestar's HTTP metrics.

The gauges are refreshed from the store on each scrape (a few aggregate queries), so
they are never stale and cost nothing between scrapes.
"""

from __future__ import annotations

from typing import get_args

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from control.core.deps import Db, NodePolicyDep
from control.nodes.schemas import NodeStatus
from control.nodes.service import NodeStatusPolicy, status_counts

NODE_STATUSES: tuple[NodeStatus, ...] = get_args(NodeStatus)

NODES = Gauge("ftcontrol_nodes", "Live nodes by status", ["workspace", "status"])
ACTIVE_INCIDENTS = Gauge("ftcontrol_incidents_active", "Active incidents", ["workspace"])
WORKSPACES = Gauge("ftcontrol_workspaces", "Workspaces")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
DELIVERIES = Gauge(
    "ftcontrol_notification_deliveries",
    "Notification deliveries in the store by status (failed: every retry used up)",
    ["workspace", "status"],
)


async def refresh_gauges(db: Db, policy: NodeStatusPolicy) -> None:
    async with db.execute(
        """SELECT w.name, (SELECT count(*) FROM incidents i
                           WHERE i.workspace_id = w.id AND i.status = 'active') AS active
           FROM workspaces w"""
    ) as cur:
        workspaces = list(await cur.fetchall())
    counts = await status_counts(db, policy)
    async with db.execute(
        """SELECT w.name, d.status, count(*) AS n FROM notification_deliveries d
           JOIN workspaces w ON w.id = d.workspace_id GROUP BY w.name, d.status"""
    ) as cur:
        deliveries = list(await cur.fetchall())
    NODES.clear()
    ACTIVE_INCIDENTS.clear()
    DELIVERIES.clear()
    WORKSPACES.set(len(workspaces))
    for row in workspaces:
        ACTIVE_INCIDENTS.labels(workspace=row["name"]).set(row["active"])
        for status in NODE_STATUSES:  # every series present, zero included
            NODES.labels(workspace=row["name"], status=status).set(0)
        for delivery_status in DELIVERY_STATUSES:
            DELIVERIES.labels(workspace=row["name"], status=delivery_status).set(0)
    for row in deliveries:
        DELIVERIES.labels(workspace=row["name"], status=row["status"]).set(row["n"])
    for workspace, node_status, count in counts:
        NODES.labels(workspace=workspace, status=node_status).set(count)


@get("/metrics", include_in_schema=False)
async def metrics(db: Db, node_policy: NodePolicyDep) -> Response[bytes]:
    await refresh_gauges(db, node_policy)
    return Response(
        generate_latest(REGISTRY), status_code=200, headers={"Content-Type": CONTENT_TYPE_LATEST}
    )

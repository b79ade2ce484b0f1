"""Every reader of incidents keeps working with fleet incidents (no node) in the store:
incident list and detail, analytics, /status, the node listing, and the same handlers
under /api/dash (session) — each scoped to its workspace."""

from __future__ import annotations

import time
from typing import Any

from tests.api.conftest import Api, Workspace
from tests.api.dashboard.dash import signed_in
from tests.api.incidents.fleet_data import fleet_incident


async def _seen(api: Api, ws: Workspace) -> tuple[str, str, list[dict[str, Any]]]:
    """A fleet incident over two nodes, and a node incident of the first node."""
    fleet, nodes = await fleet_incident(api, ws)
    own = await api.incident(ws, nodes[0]["uuid"], started_at=time.time() - 10)
    return fleet.uuid, own.uuid, nodes


async def test_rest_readers_with_a_fleet_incident(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    fleet_uuid, own_uuid, nodes = await _seen(api, ws)
    await api.node(other, "quiet")

    listed = (await api.get("/api/v1/incidents", ws)).json()
    assert listed["total"] == 2
    assert {i["uuid"]: i["scope"] for i in listed["incidents"]} == {
        fleet_uuid: "fleet",
        own_uuid: "node",
    }
    assert (await api.get(f"/api/v1/incidents/{fleet_uuid}", ws)).status_code == 200

    # Analytics: the fleet incident counts once, as a fleet incident, in no node's row.
    summary = (await api.get("/api/v1/analytics/summary", ws, range="7d")).json()
    assert (summary["incidents_total"], summary["fleet_incidents"]) == (2, 1)
    assert summary["by_family"] == {"dns_amplification": 1, "udp_flood": 1}
    assert [(n["name"], n["incidents"]) for n in summary["by_node"]] == [("edge-1", 1)]
    assert summary["peak_pps"] == 225_000.0

    # /status: the workspace is under attack; each node's status is its own.
    status = (await api.get("/api/v1/status", ws)).json()
    assert (status["overall"], status["under_attack"], status["fleet_incidents_active"]) == (
        "under_attack",
        1,
        1,
    )
    per_node = {n["name"]: n["active_incidents"] for n in status["nodes"]}
    assert per_node == {"edge-1": 1, "edge-2": 0}
    # The node listing: a node's active incidents are its own.
    listing = (await api.get("/api/v1/nodes", ws)).json()["nodes"]
    assert {n["name"]: n["active_incidents"] for n in listing} == per_node
    second = (await api.get(f"/api/v1/nodes/{nodes[1]['uuid']}", ws)).json()["node"]
    assert second["active_incidents"] == 0 and second["status"] != "attack"

    # The other workspace sees none of it.
    theirs = (await api.get("/api/v1/status", other)).json()
    assert theirs["fleet_incidents_active"] == 0
    assert (await api.get("/api/v1/incidents", other, scope="fleet")).json()["total"] == 0
    other_summary = (await api.get("/api/v1/analytics/summary", other, range="7d")).json()
    assert (other_summary["incidents_total"], other_summary["fleet_incidents"]) == (0, 0)

    # Resolved: no longer active anywhere, still counted in analytics.
    await api.incidents.resolve_fleet(ws.id, fleet_uuid, time.time())
    assert (await api.get("/api/v1/status", ws)).json()["fleet_incidents_active"] == 0
    summary = (await api.get("/api/v1/analytics/summary", ws, range="7d")).json()
    assert summary["fleet_incidents"] == 1


async def test_dashboard_json_with_a_fleet_incident(api: Api, ws: Workspace) -> None:
    fleet_uuid, own_uuid, _ = await _seen(api, ws)
    session = await signed_in(api, ws, "viewer@acme.example", "viewer")
    headers = session.headers(csrf=False)
    r = await api.client.get("/api/dash/incidents", headers=headers, params={"scope": "fleet"})
    assert r.status_code == 200, r.text
    assert [i["uuid"] for i in r.json()["incidents"]] == [fleet_uuid]
    r = await api.client.get(f"/api/dash/incidents/{fleet_uuid}", headers=headers)
    assert r.status_code == 200, r.text
    detail = r.json()["incident"]
    assert (detail["group"], len(detail["nodes"]), detail["node"]) == ("203.0.113.0/24", 2, None)
    r = await api.client.get("/api/dash/status", headers=headers)
    assert r.json()["fleet_incidents_active"] == 1
    r = await api.client.get("/api/dash/analytics/summary", headers=headers)
    assert r.status_code == 200 and r.json()["fleet_incidents"] == 1
    r = await api.client.get("/api/dash/nodes", headers=headers)
    assert sorted(n["active_incidents"] for n in r.json()["nodes"]) == [0, 1]
    r = await api.client.get(f"/api/dash/incidents/{own_uuid}", headers=headers)
    assert r.json()["incident"]["fleet_incident_uuid"] == fleet_uuid  # opened during it


async def test_fleet_announcement_shows_on_the_incident(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    """A fleet incident's FlowSpec rule is for its group's prefix (node_id NULL), as the
    fleet engine stores it."""
    fleet_uuid, _, _ = await _seen(api, ws)
    now = time.time()
    await api.sql(
        "INSERT INTO bgp_announcements (workspace_id, node_id, incident_id, kind, trigger, "
        "destination, protocol, src_port, action, announced_at, expires_at) "
        "SELECT workspace_id, NULL, id, 'flowspec', 'fleet_uplink_share', group_key, 17, 53, "
        "'discard', ?, ? FROM incidents WHERE uuid = ?",
        now,
        now + 300,
        fleet_uuid,
    )
    detail = (await api.get(f"/api/v1/incidents/{fleet_uuid}", ws)).json()["incident"]
    (announced,) = detail["announcements"]
    assert (announced["node_uuid"], announced["incident_uuid"], announced["destination"]) == (
        None,
        fleet_uuid,
        "203.0.113.0/24",
    )
    assert (announced["trigger"], announced["in_force"]) == ("fleet_uplink_share", True)
    # (GET /api/v1/bgp/announcements reads the same view; it needs BGP configured.)
    r = await api.get(f"/api/v1/incidents/{fleet_uuid}", other)
    assert r.status_code == 404

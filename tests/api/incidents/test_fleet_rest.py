"""REST API v1 incidents with fleet incidents in the store: the list item and the detail
(scope, group, fleet_incident_uuid, nodes), the `scope` filter, the operator's status."""

from __future__ import annotations

import time

from tests.api.conftest import Api, Workspace, assert_error
from tests.api.incidents.fleet_data import fleet_incident

NODE_FIELDS = {
    "node_uuid",
    "node_name",
    "share",
    "peak_pps",
    "peak_bps",
    "state",
    "rules",
    "dropped_packets",
    "spared_packets",
    "in_force_since",
}


async def test_fleet_incident_detail_and_list_item(api: Api, ws: Workspace) -> None:
    fleet, nodes = await fleet_incident(api, ws)
    r = await api.get(f"/api/v1/incidents/{fleet.uuid}", ws)
    assert r.status_code == 200, r.text
    inc = r.json()["incident"]
    assert (inc["scope"], inc["group"], inc["node"], inc["fleet_incident_uuid"]) == (
        "fleet",
        "203.0.113.0/24",
        None,
        None,
    )
    # No node: no sources, no pcap; the summary names the group and the node count.
    assert (inc["top_sources"], inc["geo_origin"], inc["pcap"], inc["source_count"]) == (
        [],
        [],
        None,
        0,
    )
    assert "prefix 203.0.113.0/24 (2 nodes)" in inc["summary"]
    assert "Fleet rules in force on 1 node: 9000 packets dropped, 40 spared" in inc["summary"]
    assert [set(n) for n in inc["nodes"]] == [NODE_FIELDS, NODE_FIELDS]
    first, second = inc["nodes"]
    assert (first["node_uuid"], first["node_name"], first["state"]) == (
        nodes[0]["uuid"],
        "edge-1",
        "reporting",
    )
    assert (first["share"], first["dropped_packets"], first["spared_packets"]) == (0.5, 9000, 40)
    assert first["rules"][0]["match"] == "signature proto=17 sport=53"
    assert first["in_force_since"].endswith("Z")
    assert (second["rules"], second["dropped_packets"], second["in_force_since"]) == ([], 0, None)

    listed = (await api.get("/api/v1/incidents", ws)).json()["incidents"]
    item = next(i for i in listed if i["uuid"] == fleet.uuid)
    assert (item["scope"], item["group"], item["node"]) == ("fleet", "203.0.113.0/24", None)
    assert [n["node_name"] for n in item["nodes"]] == ["edge-1", "edge-2"]


async def test_scope_filter_and_linked_node_incident(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    fleet, nodes = await fleet_incident(api, ws)
    node_incident = await api.incident(ws, nodes[1]["uuid"], started_at=time.time())
    await fleet_incident(api, other, node_names=("theirs",))

    async def uuids(**params: str) -> list[str]:
        r = (await api.get("/api/v1/incidents", ws, **params)).json()
        assert r["total"] == len(r["incidents"])
        return [i["uuid"] for i in r["incidents"]]

    assert await uuids() == [node_incident.uuid, fleet.uuid]
    assert await uuids(scope="fleet") == [fleet.uuid]
    assert await uuids(scope="node") == [node_incident.uuid]
    assert await uuids(scope="fleet", status="resolved") == []
    # A node's incidents are its own (the fleet incident is listed under scope=fleet).
    assert await uuids(node=nodes[0]["uuid"]) == []
    for bad in ("group", "FLEET", ""):
        r = await api.get("/api/v1/incidents", ws, scope=bad)
        assert assert_error(r, 400, "scope")["field"] == "scope"

    linked = (await api.get(f"/api/v1/incidents/{node_incident.uuid}", ws)).json()["incident"]
    assert (linked["scope"], linked["fleet_incident_uuid"], linked["group"]) == (
        "node",
        fleet.uuid,
        None,
    )
    assert linked["node"]["uuid"] == nodes[1]["uuid"] and linked["nodes"] == []


async def test_operator_closes_a_fleet_incident(api: Api, ws: Workspace) -> None:
    fleet, _ = await fleet_incident(api, ws)
    url = f"/api/v1/incidents/{fleet.uuid}"
    r = await api.client.patch(url, json={"status": "false_positive"}, headers=ws.headers)
    assert r.status_code == 200, r.text
    assert r.json()["incident"]["status"] == "false_positive"
    assert r.json()["incident"]["scope"] == "fleet"
    assert await api.incidents.active_fleet() == []
    assert [e.kind for e in api.events] == ["opened", "false_positive"]


async def test_deleted_node_keeps_its_row_in_the_fleet_incident(api: Api, ws: Workspace) -> None:
    fleet, nodes = await fleet_incident(api, ws)
    r = await api.client.delete(f"/api/v1/nodes/{nodes[1]['uuid']}", headers=ws.headers)
    assert r.status_code in (200, 204), r.text
    inc = (await api.get(f"/api/v1/incidents/{fleet.uuid}", ws)).json()["incident"]
    assert inc["status"] == "active"  # deleting a member does not end the group's incident
    assert [n["node_name"] for n in inc["nodes"]] == ["edge-1", "edge-2"]

"""REST API v1 nodes: list (pagination, status filter), create, get, update, soft delete."""

from __future__ import annotations

import json
import time

from control.core.errors import Unauthorized
from control.nodes.service import authenticate_node
from tests.api.conftest import Api, Workspace, assert_error

NODE_FIELDS = {
    "uuid",
    "name",
    "ip",
    "location",
    "os",
    "interface",
    "priority",
    "status",
    "last_pps",
    "active_incidents",
    "created_at",
    "last_seen",
    "mitigation_policy",
    "uplink_mbps",
}


async def test_create_returns_full_node_and_key(api: Api, ws: Workspace) -> None:
    body = {
        "name": "db-1",
        "ip": "198.51.100.7",
        "location": "AMS",
        "os": "ubuntu-24.04",
        "interface": "bond0",
        "priority": "production",
    }
    r = await api.client.post("/api/v1/nodes", json=body, headers=ws.headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["ok"] is True and len(out["api_key"]) == 64
    node = out["node"]
    assert set(node) == NODE_FIELDS | {"baseline"}
    assert {k: node[k] for k in body} == body
    assert node["status"] == "offline" and node["last_seen"] is None  # never heard from
    assert node["baseline"] is None and node["active_incidents"] == 0
    assert node["created_at"].endswith("Z")


async def test_priorities_accepted_and_unknown_refused(api: Api, ws: Workspace) -> None:
    for i, priority in enumerate(("production", "staging", "development", "normal", "high")):
        node = await api.node(ws, f"n{i}", priority=priority)
        assert node["priority"] == priority
    r = await api.client.post(
        "/api/v1/nodes",
        json={"name": "x", "ip": "192.0.2.1", "priority": "urgent"},
        headers=ws.headers,
    )
    assert assert_error(r, 400, "priority")["field"] == "priority"


async def test_create_validation_errors_name_the_field(api: Api, ws: Workspace) -> None:
    for body, field in (
        ({"ip": "192.0.2.1"}, "name"),
        ({"name": "a"}, "ip"),
        ({"name": "n" * 101, "ip": "192.0.2.1"}, "name"),
        ({"name": "a", "ip": "192.0.2.256"}, "ip"),
        ({"name": "a", "ip": "::ffff:zz"}, "ip"),
        ({"name": "a", "ip": "192.0.2.1", "location": "L" * 101}, "location"),
    ):
        r = await api.client.post("/api/v1/nodes", json=body, headers=ws.headers)
        assert assert_error(r, 400, field)["field"] == field
    # exactly 100 characters is allowed
    assert (await api.node(ws, "n" * 100))["name"] == "n" * 100


async def test_list_shape_and_default_page(api: Api, ws: Workspace) -> None:
    await api.node(ws, "a")
    r = await api.get("/api/v1/nodes", ws)
    body = r.json()
    assert r.status_code == 200
    assert body["ok"] is True and body["total"] == 1
    assert (body["limit"], body["offset"]) == (50, 0)
    assert set(body["nodes"][0]) == NODE_FIELDS  # no baseline in lists


async def test_list_pagination_edges(api: Api, ws: Workspace) -> None:
    names = [f"node-{i:03d}" for i in range(105)]
    await api.sql("UPDATE workspaces SET node_limit = 1000 WHERE id = ?", ws.id)
    for name in names:
        await api.node(ws, name)
    page = (await api.get("/api/v1/nodes", ws, limit=100)).json()
    assert page["total"] == 105 and len(page["nodes"]) == 100
    assert [n["name"] for n in page["nodes"]] == names[:100]  # creation order
    rest = (await api.get("/api/v1/nodes", ws, limit=100, offset=100)).json()
    assert [n["name"] for n in rest["nodes"]] == names[100:]
    one = (await api.get("/api/v1/nodes", ws, limit=1, offset=104)).json()
    assert [n["name"] for n in one["nodes"]] == names[104:]
    past = (await api.get("/api/v1/nodes", ws, offset=105)).json()
    assert past["nodes"] == [] and past["total"] == 105
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -1}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "1.5"}, "offset"),
    ):
        r = await api.get("/api/v1/nodes", ws, **params)
        assert assert_error(r, 400, field)["field"] == field


async def test_status_derivation_and_filter(api: Api, ws: Workspace) -> None:
    offline = await api.node(ws, "never-seen")
    stale = await api.node(ws, "stale")
    online = await api.node(ws, "online")
    elevated = await api.node(ws, "elevated")
    attacked = await api.node(ws, "attacked")
    now = time.time()
    await api.sql("UPDATE nodes SET last_seen = ? WHERE uuid = ?", now - 3600, stale["uuid"])
    for node in (online, elevated, attacked):
        await api.sql(
            "UPDATE nodes SET last_seen = ?, last_pps = 1000, baseline_avg_pps = 800, "
            "baseline_p95_pps = 1200, baseline_protocols = ? WHERE uuid = ?",
            now,
            json.dumps({"tcp": 70.0, "udp": 30.0}),
            node["uuid"],
        )
    await api.sql("UPDATE nodes SET last_pps = 5000 WHERE uuid = ?", elevated["uuid"])
    await api.incident(ws, attacked["uuid"])
    expected = {
        "offline": {"never-seen", "stale"},
        "online": {"online"},
        "elevated": {"elevated"},
        "attack": {"attacked"},
    }
    for status, names in expected.items():
        body = (await api.get("/api/v1/nodes", ws, status=status)).json()
        assert {n["name"] for n in body["nodes"]} == names, status
        assert body["total"] == len(names)
    attacked_row = (await api.get(f"/api/v1/nodes/{attacked['uuid']}", ws)).json()["node"]
    assert attacked_row["active_incidents"] == 1 and attacked_row["status"] == "attack"
    assert_error(await api.get("/api/v1/nodes", ws, status="down"), 400, "status")
    assert offline["status"] == "offline"


async def test_get_includes_baseline_once_reported(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "a")
    got = (await api.get(f"/api/v1/nodes/{node['uuid']}", ws)).json()
    assert got["ok"] is True and got["node"]["baseline"] is None
    await api.sql(
        "UPDATE nodes SET baseline_avg_pps = 3200, baseline_p95_pps = 8500, "
        "baseline_protocols = ? WHERE uuid = ?",
        json.dumps({"tcp": 72.3, "udp": 25.1}),
        node["uuid"],
    )
    got = (await api.get(f"/api/v1/nodes/{node['uuid']}", ws)).json()["node"]
    assert got["baseline"] == {
        "avg_pps": 3200,
        "p95_pps": 8500,
        "protocols": {"tcp": 72.3, "udp": 25.1},
    }
    assert_error(await api.get("/api/v1/nodes/not-a-uuid", ws), 404)


async def test_patch_changes_only_given_fields(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "a", location="FRA", os="debian")
    r = await api.client.patch(
        f"/api/v1/nodes/{node['uuid']}",
        json={"location": "US-East", "priority": "high"},
        headers=ws.headers,
    )
    assert r.status_code == 200, r.text
    got = r.json()["node"]
    assert (got["location"], got["priority"], got["os"], got["name"]) == (
        "US-East",
        "high",
        "debian",
        "a",
    )
    r = await api.client.patch(
        f"/api/v1/nodes/{node['uuid']}",
        json={"os": None, "ip": "2001:0db8::0010", "name": "b"},
        headers=ws.headers,
    )
    got = r.json()["node"]
    assert (got["os"], got["ip"], got["name"]) == (None, "2001:db8::10", "b")
    unchanged = await api.client.patch(f"/api/v1/nodes/{node['uuid']}", json={}, headers=ws.headers)
    assert unchanged.json()["node"] == got


async def test_patch_errors(api: Api, ws: Workspace) -> None:
    a = await api.node(ws, "a")
    await api.node(ws, "b")
    url = f"/api/v1/nodes/{a['uuid']}"
    for body, field in (
        ({"ip": "300.1.1.1"}, "ip"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"priority": "low"}, "priority"),
        ({"interface": "a/b"}, "interface"),
        ({"uuid": "x"}, "uuid"),
        ({"name": None}, "name"),
    ):
        r = await api.client.patch(url, json=body, headers=ws.headers)
        assert assert_error(r, 400, field)["field"] == field
    assert_error(await api.client.patch(url, json={"name": "b"}, headers=ws.headers), 409)
    r = await api.client.patch(
        "/api/v1/nodes/00000000-0000-0000-0000-000000000000", json={"name": "z"}, headers=ws.headers
    )
    assert_error(r, 404)


async def test_delete_is_soft(api: Api, ws: Workspace) -> None:
    r = await api.client.post(
        "/api/deploy", json={"name": "gone", "ip": "192.0.2.9"}, headers=ws.headers
    )
    uuid, key = r.json()["node_uuid"], r.json()["api_key"]
    incident = await api.incident(ws, uuid)
    r = await api.client.delete(f"/api/v1/nodes/{uuid}", headers=ws.headers)
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert_error(await api.get(f"/api/v1/nodes/{uuid}", ws), 404)
    assert (await api.get("/api/v1/nodes", ws)).json()["total"] == 0
    assert_error(await api.client.delete(f"/api/v1/nodes/{uuid}", headers=ws.headers), 404)
    assert_error(
        await api.client.patch(f"/api/v1/nodes/{uuid}", json={"os": "x"}, headers=ws.headers), 404
    )
    try:
        await authenticate_node(api.app.state.db, key, uuid)
        raise AssertionError("a deleted node's API key still works")
    except Unauthorized:
        pass
    # The row is kept (history) and its incident stays readable.
    async with api.app.state.db.execute(
        "SELECT deleted_at FROM nodes WHERE uuid = ?", (uuid,)
    ) as cur:
        (deleted_at,) = await cur.fetchone()
    assert deleted_at is not None
    kept = (await api.get(f"/api/v1/incidents/{incident.uuid}", ws)).json()["incident"]
    assert kept["status"] == "resolved" and kept["ended_at"] is not None
    assert [e.kind for e in api.events] == ["opened", "resolved"]
    # The name can be reused by a new node.
    reused = await api.node(ws, "gone")
    assert reused["uuid"] != uuid


async def test_workspaces_never_see_each_others_nodes(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    mine = await api.node(ws, "mine")
    await api.node(other, "theirs")
    listed = (await api.get("/api/v1/nodes", other)).json()
    assert [n["name"] for n in listed["nodes"]] == ["theirs"]
    url = f"/api/v1/nodes/{mine['uuid']}"
    assert_error(await api.get(url, other), 404)
    assert_error(await api.client.patch(url, json={"os": "x"}, headers=other.headers), 404)
    assert_error(await api.client.delete(url, headers=other.headers), 404)
    assert (await api.get(url, ws)).json()["node"]["os"] is None  # untouched


async def test_every_node_route_needs_a_token(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "a")
    url = f"/api/v1/nodes/{node['uuid']}"
    for method, path in (
        ("GET", "/api/v1/nodes"),
        ("POST", "/api/v1/nodes"),
        ("GET", url),
        ("PATCH", url),
        ("DELETE", url),
    ):
        r = await api.client.request(method, path, json={} if method in ("POST", "PATCH") else None)
        assert_error(r, 401)

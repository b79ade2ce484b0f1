"""POST /api/deploy: registration with the workspace deploy token, and its error codes."""

from __future__ import annotations

import hashlib
import re

from control.nodes.service import authenticate_node
from control.workspace.service import rotate_token, set_subscription
from tests.api.conftest import Api, Workspace, assert_error

BODY = {"name": "web-prod-1", "ip": "203.0.113.10"}


async def test_deploy_returns_uuid_and_api_key(api: Api, ws: Workspace) -> None:
    r = await api.client.post("/api/deploy", json=BODY, headers=ws.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert body["name"] == "web-prod-1" and body["ip"] == "203.0.113.10"
    assert re.fullmatch(r"[0-9a-f]{64}", body["api_key"])
    assert re.fullmatch(r"[0-9a-f-]{36}", body["node_uuid"])
    # The key works for the agent and is stored only as its SHA-256.
    caller = await authenticate_node(api.app.state.db, body["api_key"], body["node_uuid"])
    assert caller.workspace_id == ws.id
    async with api.app.state.db.execute("SELECT api_key_hash FROM nodes") as cur:
        (stored,) = await cur.fetchone()
    assert stored == hashlib.sha256(body["api_key"].encode()).hexdigest()
    node = (await api.get(f"/api/v1/nodes/{body['node_uuid']}", ws)).json()["node"]
    assert node["interface"] == "eth0" and node["priority"] == "normal"


async def test_deploy_optional_fields_and_ipv6_normalised(api: Api, ws: Workspace) -> None:
    body = {
        "name": "edge",
        "ip": "2001:DB8:0::0001",
        "location": "FRA",
        "os": "debian-12",
        "interface": "ens3",
    }
    r = await api.client.post("/api/deploy", json=body, headers=ws.headers)
    assert r.status_code == 200, r.text
    assert r.json()["ip"] == "2001:db8::1"
    node = (await api.get(f"/api/v1/nodes/{r.json()['node_uuid']}", ws)).json()["node"]
    assert (node["location"], node["os"], node["interface"]) == ("FRA", "debian-12", "ens3")


async def test_deploy_401_missing_invalid_and_revoked_token(api: Api, ws: Workspace) -> None:
    assert_error(await api.client.post("/api/deploy", json=BODY), 401, "token")
    bad = {"Authorization": "Bearer " + "0" * 64}
    assert_error(await api.client.post("/api/deploy", json=BODY, headers=bad), 401)
    basic = {"Authorization": f"Basic {ws.token}"}
    assert_error(await api.client.post("/api/deploy", json=BODY, headers=basic), 401)
    new_token = await rotate_token(api.app.state.db, ws.name)
    assert_error(await api.client.post("/api/deploy", json=BODY, headers=ws.headers), 401)
    fresh = {"Authorization": f"Bearer {new_token}"}
    assert (await api.client.post("/api/deploy", json=BODY, headers=fresh)).status_code == 200


async def test_deploy_400_name_or_ip_missing_or_invalid(api: Api, ws: Workspace) -> None:
    for body, field in (
        ({"ip": "203.0.113.10"}, "name"),
        ({"name": "a"}, "ip"),
        ({"name": "   ", "ip": "203.0.113.10"}, "name"),
        ({"name": "a", "ip": ""}, "ip"),
        ({"name": "a", "ip": "203.0.113.300"}, "ip"),
        ({"name": "a", "ip": "2001:db8::g"}, "ip"),
        ({"name": "x" * 101, "ip": "203.0.113.10"}, "name"),
        ({"name": "a", "ip": "203.0.113.10", "interface": "eth 0"}, "interface"),
        ({"name": "a", "ip": "203.0.113.10", "color": "red"}, "color"),
        ({"name": 7, "ip": "203.0.113.10"}, "name"),
    ):
        r = await api.client.post("/api/deploy", json=body, headers=ws.headers)
        assert assert_error(r, 400, field)["field"] == field
    r = await api.client.post("/api/deploy", content=b"{not json", headers=ws.headers)
    assert_error(r, 400)
    assert (await api.get("/api/v1/nodes", ws)).json()["total"] == 0


async def test_deploy_402_subscription_inactive(api: Api, ws: Workspace) -> None:
    for status in ("past_due", "canceled"):
        await set_subscription(api.app.state.db, ws.name, status)
        r = await api.client.post("/api/deploy", json=BODY, headers=ws.headers)
        assert_error(r, 402, status)
    await set_subscription(api.app.state.db, ws.name, "active")
    assert (await api.client.post("/api/deploy", json=BODY, headers=ws.headers)).status_code == 200


async def test_deploy_402_node_limit(api: Api) -> None:
    free = await api.workspace("small", "free")  # 5 nodes
    for i in range(5):
        body = {"name": f"n{i}", "ip": "198.51.100.1"}
        assert (
            await api.client.post("/api/deploy", json=body, headers=free.headers)
        ).status_code == 200
    r = await api.client.post(
        "/api/deploy", json={"name": "n5", "ip": "198.51.100.1"}, headers=free.headers
    )
    assert_error(r, 402, "limit")
    # A deleted node frees its slot.
    uuid = (await api.get("/api/v1/nodes", free)).json()["nodes"][0]["uuid"]
    await api.client.delete(f"/api/v1/nodes/{uuid}", headers=free.headers)
    r = await api.client.post(
        "/api/deploy", json={"name": "n5", "ip": "198.51.100.1"}, headers=free.headers
    )
    assert r.status_code == 200


async def test_deploy_409_duplicate_name_per_workspace(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    assert (await api.client.post("/api/deploy", json=BODY, headers=ws.headers)).status_code == 200
    assert_error(
        await api.client.post("/api/deploy", json=BODY, headers=ws.headers), 409, "web-prod-1"
    )
    # The same name in another workspace is fine.
    r = await api.client.post("/api/deploy", json=BODY, headers=other.headers)
    assert r.status_code == 200

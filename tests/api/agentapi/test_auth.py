"""Node-key auth on every Agent API endpoint."""

from __future__ import annotations

import pytest

from tests.api.agentapi.conftest import Agent, deploy
from tests.api.conftest import Api, Workspace, assert_error

UUID = "6f1d3c2b-9a8e-4f70-8c1d-2e3f4a5b6c7d"
ENDPOINTS: list[tuple[str, str, object]] = [
    ("POST", "/api/v1/agent/heartbeat", {"version": "1", "xdp_mode": "generic"}),
    ("GET", "/api/v1/agent/config", None),
    ("POST", "/api/v1/agent/commands/ack", {"acks": []}),
    ("POST", "/api/v1/agent/metrics", {"points": []}),
    ("POST", "/api/v1/agent/incidents", {"uuid": UUID, "started_at": 1.0,
                                         "figures": {"seq": 1, "family": "udp_flood"}}),
    ("POST", f"/api/v1/agent/incidents/{UUID}", {"figures": {"seq": 2, "family": "udp_flood"}}),
    ("POST", f"/api/v1/agent/incidents/{UUID}/resolve",
     {"ended_at": 2.0, "figures": {"seq": 3, "family": "udp_flood"}}),
    ("POST", f"/api/v1/agent/incidents/{UUID}/pcap", None),
]  # fmt: skip


async def call(api: Api, method: str, path: str, body: object, headers: dict[str, str]):
    if method == "GET":
        return await api.client.get(path, headers=headers)
    if body is None:
        return await api.client.post(path, files={"file": ("x.pcap", b"x")}, headers=headers)
    return await api.client.post(path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_every_endpoint_refuses_bad_credentials(
    api: Api, ws: Workspace, agent: Agent, method: str, path: str, body: object
) -> None:
    other = await deploy(api, ws, name="edge-2", ip="198.51.100.11")
    wrong = [
        {},  # nothing
        {"Authorization": f"Bearer {agent.api_key}"},  # no X-Node-UUID
        {"X-Node-UUID": agent.uuid},  # no key
        {"Authorization": f"Bearer {'0' * 64}", "X-Node-UUID": agent.uuid},  # wrong key
        {"Authorization": f"Bearer {agent.api_key}", "X-Node-UUID": other.uuid},  # key of another
        {"Authorization": f"Basic {agent.api_key}", "X-Node-UUID": agent.uuid},  # wrong scheme
        {"Authorization": f"Bearer {ws.token}", "X-Node-UUID": agent.uuid},  # deploy token
    ]
    for headers in wrong:
        r = await call(api, method, path, body, headers)
        assert_error(r, 401, "invalid node credentials")


async def test_deleted_nodes_key_stops_working_at_once(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    beat = {"version": "1", "xdp_mode": "native"}
    r = await api.client.post("/api/v1/agent/heartbeat", json=beat, headers=agent.headers)
    assert r.status_code == 200, r.text
    r = await api.client.delete(f"/api/v1/nodes/{agent.uuid}", headers=ws.headers)
    assert r.status_code == 200, r.text
    r = await api.client.post("/api/v1/agent/heartbeat", json=beat, headers=agent.headers)
    assert_error(r, 401)
    r = await api.client.get("/api/v1/agent/config", headers=agent.headers)
    assert_error(r, 401)


async def test_rest_api_does_not_accept_a_node_key(api: Api, agent: Agent) -> None:
    r = await api.client.get("/api/v1/nodes", headers=agent.headers)
    assert_error(r, 401)

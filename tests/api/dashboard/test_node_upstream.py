"""The node page's upstream-mitigation form: PATCH /api/dash/nodes/{uuid} is the REST API's
own node update (same validation, same service) behind the session, admin only."""

from __future__ import annotations

from tests.api.conftest import Api, Workspace, assert_error
from tests.api.dashboard.dash import signed_in


async def test_admin_sets_the_policy_and_uplink_viewer_cannot(api: Api, ws: Workspace) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    viewer = await signed_in(api, ws, "viewer@acme.example", role="viewer")
    r = await api.client.post(
        "/api/dash/nodes", json={"name": "edge-1", "ip": "192.0.2.1"}, headers=admin.headers()
    )
    assert r.status_code == 201, r.text
    path = f"/api/dash/nodes/{r.json()['node']['uuid']}"
    assert r.json()["node"]["mitigation_policy"] == "local"
    bad = await api.client.patch(path, json={"uplink_mbps": 0}, headers=admin.headers())
    assert_error(bad, 400, "uplink_mbps")
    bad = await api.client.patch(path, json={"mitigation_policy": "pray"}, headers=admin.headers())
    assert_error(bad, 400, "mitigation_policy")
    body = {"mitigation_policy": "flowspec_then_rtbh", "uplink_mbps": 10000}
    refused = await api.client.patch(path, json=body, headers=viewer.headers())
    assert_error(refused, 403, "viewers")
    done = await api.client.patch(path, json=body, headers=admin.headers())
    assert done.status_code == 200, done.text
    rest = await api.client.get(path.replace("/api/dash/", "/api/v1/"), headers=ws.headers)
    node = rest.json()["node"]
    assert (node["mitigation_policy"], node["uplink_mbps"]) == ("flowspec_then_rtbh", 10000.0)
    cleared = await api.client.patch(path, json={"uplink_mbps": None}, headers=admin.headers())
    assert cleared.status_code == 200 and cleared.json()["node"]["uplink_mbps"] is None

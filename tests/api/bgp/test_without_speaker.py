"""The BGP routes of an ftcontrol started without --bgp-config, the node's mitigation
fields, and the escalate request's validation (no daemons: see tests/bgp for BIRD)."""

from __future__ import annotations

from tests.api.conftest import Api, Workspace, assert_error

NOT_CONFIGURED = "BGP is not configured (start ftcontrol serve with --bgp-config PATH)"


async def test_without_bgp_config_every_bgp_route_says_so_and_refusal_is_recorded(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    node = await api.node(ws)
    incident = await api.incident(ws, node["uuid"])
    r = await api.client.post(
        f"/api/v1/incidents/{incident.uuid}/escalate", json={"action": "rtbh"}, headers=ws.headers
    )
    assert_error(r, 409, NOT_CONFIGURED)
    detail = (await api.get(f"/api/v1/incidents/{incident.uuid}", ws)).json()["incident"]
    [refusal] = detail["upstream_refusals"]
    assert (refusal["action"], refusal["trigger"], refusal["reason"]) == (
        "rtbh",
        "manual",
        NOT_CONFIGURED,
    )
    assert detail["announcements"] == []
    for path in ("/api/v1/bgp/announcements", "/api/v1/bgp/peers"):
        assert_error(await api.get(path, ws), 409, "BGP is not configured")
    # ids first: an unknown (or another workspace's) announcement is not found
    assert_error(await api.client.delete("/api/v1/bgp/announcements/1", headers=ws.headers), 404)
    # another workspace's incident: not found, and nothing recorded on it
    r = await api.client.post(
        f"/api/v1/incidents/{incident.uuid}/escalate",
        json={"action": "flowspec"},
        headers=other.headers,
    )
    assert_error(r, 404)
    detail = (await api.get(f"/api/v1/incidents/{incident.uuid}", ws)).json()["incident"]
    assert len(detail["upstream_refusals"]) == 1


async def test_escalate_validates_the_action_and_needs_an_active_incident(
    api: Api, ws: Workspace
) -> None:
    node = await api.node(ws)
    incident = await api.incident(ws, node["uuid"])
    url = f"/api/v1/incidents/{incident.uuid}/escalate"
    body = assert_error(
        await api.client.post(url, json={"action": "nuke"}, headers=ws.headers), 400, "action"
    )
    assert body["field"] == "action"
    assert_error(await api.client.post(url, json={}, headers=ws.headers), 400, "action")
    await api.incidents.set_status(ws.id, incident.uuid, "resolved")
    r = await api.client.post(url, json={"action": "flowspec"}, headers=ws.headers)
    assert_error(r, 409, "incident is resolved, not active")


async def test_node_mitigation_policy_and_uplink_are_patched_validated_and_shown(
    api: Api, ws: Workspace
) -> None:
    node = await api.node(ws)
    assert (node["mitigation_policy"], node["uplink_mbps"]) == ("local", None)
    url = f"/api/v1/nodes/{node['uuid']}"
    r = await api.client.patch(
        url,
        json={"mitigation_policy": "flowspec_then_rtbh", "uplink_mbps": 1000},
        headers=ws.headers,
    )
    assert r.status_code == 200, r.text
    shown = (await api.get(url, ws)).json()["node"]
    assert (shown["mitigation_policy"], shown["uplink_mbps"]) == ("flowspec_then_rtbh", 1000.0)
    listed = (await api.get("/api/v1/nodes", ws)).json()["nodes"][0]
    assert listed["mitigation_policy"] == "flowspec_then_rtbh"

    for bad, field in (
        ({"mitigation_policy": "blackhole"}, "mitigation_policy"),
        ({"uplink_mbps": 0}, "uplink_mbps"),
        ({"uplink_mbps": -5}, "uplink_mbps"),
        ({"uplink_mbps": 1e12}, "uplink_mbps"),
        ({"uplink_mbps": "fast"}, "uplink_mbps"),
    ):
        body = assert_error(await api.client.patch(url, json=bad, headers=ws.headers), 400, field)
        assert body["field"] == field, (bad, body)
    r = await api.client.patch(url, json={"uplink_mbps": None}, headers=ws.headers)
    assert r.status_code == 200 and r.json()["node"]["uplink_mbps"] is None
    assert r.json()["node"]["mitigation_policy"] == "flowspec_then_rtbh"  # unchanged

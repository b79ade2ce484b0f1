"""App-wide behaviour: error shapes, health, OpenAPI, Prometheus /metrics, auth exclusions."""

from __future__ import annotations

import re

from litestar import get

from tests.api.conftest import Api, Workspace, assert_error

V1_PATHS = {
    "/api/deploy": {"post"},
    "/api/v1/nodes": {"get", "post"},
    "/api/v1/nodes/{node_uuid}": {"get", "patch", "delete"},
    "/api/v1/incidents": {"get"},
    "/api/v1/incidents/{incident_uuid}": {"get", "patch"},
    "/api/v1/channels": {"get", "post"},
    "/api/v1/channels/{channel_id}": {"delete"},
    "/api/v1/workspace": {"get"},
    "/api/v1/analytics/summary": {"get"},
    "/api/v1/status": {"get"},
}


async def test_health_needs_no_token(api: Api) -> None:
    r = await api.client.get("/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_framework_errors_share_the_error_shape(api: Api, ws: Workspace) -> None:
    assert_error(await api.client.get("/api/v2/nothing", headers=ws.headers), 404)
    assert_error(await api.client.put("/api/v1/nodes", headers=ws.headers, json={}), 405)
    assert_error(await api.client.post("/api/v1/nodes", headers=ws.headers, content=b"[1, 2"), 400)
    assert_error(await api.client.post("/api/v1/nodes", headers=ws.headers, json=[1]), 400)

    @get("/api/v1/explode", sync_to_thread=False)
    def explode() -> None:
        raise RuntimeError("boom: secret detail")

    api.app.register(explode)
    r = await api.client.get("/api/v1/explode", headers=ws.headers)
    body = assert_error(r, 500)
    assert "boom" not in body["error"]  # internals are logged, not returned


async def test_auth_middleware_exclusions(api: Api) -> None:
    # The Agent API prefix is not guarded by deploy tokens (it authenticates node keys):
    # with no route there yet, an unknown agent path is a plain 404, not a 401.
    assert_error(await api.client.get("/api/v1/agent/heartbeat-does-not-exist"), 404)
    assert (await api.client.get("/schema/openapi.json")).status_code == 200
    assert (await api.client.get("/metrics")).status_code == 200
    assert_error(await api.client.get("/api/v1/nodes"), 401)
    assert_error(await api.client.get("/api/v1/nodes", headers={"Authorization": "Bearer"}), 401)


async def test_openapi_documents_every_endpoint_with_bearer(api: Api) -> None:
    schema = (await api.client.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["DeployToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Workspace deploy token (64 hex characters)",
    }
    for path, methods in V1_PATHS.items():
        assert path in schema["paths"], path
        for method in methods:
            operation = schema["paths"][path][method]
            assert operation["security"] == [{"DeployToken": []}], (path, method)
            ok = next(code for code in operation["responses"] if code.startswith("2"))
            content = operation["responses"][ok]["content"]["application/json"]["schema"]
            assert "$ref" in content, (path, method, content)  # a typed Struct, not "object"
    assert "security" not in schema["paths"]["/api/health"]["get"]
    components = schema["components"]["schemas"]
    node_props = next(v for k, v in components.items() if k.endswith("NodeDetail"))["properties"]
    assert {"uuid", "name", "ip", "priority", "status", "baseline"} <= set(node_props)


async def test_metrics_gauges_and_http_metrics(api: Api, ws: Workspace) -> None:
    a = await api.node(ws, "a")
    await api.node(ws, "b")
    await api.incident(ws, a["uuid"])
    text = (await api.client.get("/metrics")).text
    assert re.search(r'^ftcontrol_nodes\{status="attack",workspace="acme"\} 1\.0$', text, re.M)
    assert re.search(r'^ftcontrol_nodes\{status="offline",workspace="acme"\} 1\.0$', text, re.M)
    assert re.search(r'^ftcontrol_nodes\{status="online",workspace="acme"\} 0\.0$', text, re.M)
    assert re.search(r'^ftcontrol_incidents_active\{workspace="acme"\} 1\.0$', text, re.M)
    assert re.search(r"^ftcontrol_workspaces 1\.0$", text, re.M)
    # HTTP metrics from Litestar's Prometheus middleware, paths grouped (no UUIDs).
    assert re.search(r'^ftcontrol_requests_total\{.*path="/api/v1/nodes".*\} \d', text, re.M)
    assert a["uuid"] not in text


async def test_every_endpoint_refuses_missing_invalid_and_revoked_tokens(
    api: Api, ws: Workspace
) -> None:
    from control.workspace.service import rotate_token

    node = await api.node(ws, "a")
    incident = await api.incident(ws, node["uuid"])
    concrete = {
        "/api/v1/nodes/{node_uuid}": f"/api/v1/nodes/{node['uuid']}",
        "/api/v1/incidents/{incident_uuid}": f"/api/v1/incidents/{incident.uuid}",
        "/api/v1/channels/{channel_id}": "/api/v1/channels/1",
    }
    revoked = dict(ws.headers)
    await rotate_token(api.app.state.db, ws.name)
    for path, methods in V1_PATHS.items():
        url = concrete.get(path, path)
        for method in methods:
            body: dict[str, str] | None = {} if method in ("post", "patch") else None
            for headers in ({}, {"Authorization": "Bearer " + "f" * 64}, revoked):
                r = await api.client.request(method.upper(), url, json=body, headers=headers)
                assert_error(r, 401)
    # Nothing changed behind the refusals.
    assert (await api.incidents.get(ws.id, incident.uuid)).status == "active"


def test_routes_declare_parameters_without_deprecated_styles(tmp_path) -> None:
    """Building the app resolves every handler's signature: no parameter of ours may use a
    style Litestar deprecates (they break in Litestar 3)."""
    import warnings

    from control.app import create_app

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_app(str(tmp_path / "w.db"))
    deprecated = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert deprecated == []

"""Workspace isolation: every id-bearing route, called with the other workspace's ids.

Two workspaces, each with a node (and its key), an incident with a pcap, a channel, an
operator rule and agent overrides. Workspace B's deploy token and B's node key are then
used on every route that takes an id, with A's ids: each answer is 404 (or 401 where
the credentials themselves do not fit), and the whole database (every row of every
table) and the pcap files are unchanged afterwards. The matrix is checked against the
app's own route table, so a new id-bearing route without a row here fails the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from control.app import create_app
from control.bgp.announcements import FlowSpecRule
from control.bgp.ledger import Owner
from control.bgp.store import SqliteLedger
from control.dashboard import users
from control.incidents.fleet import FleetNodeFigures
from tests.api.agentapi.conftest import settings_for
from tests.api.conftest import Api
from tests.api.dashboard.dash import login
from tests.api.incidents.fleet_data import figures


@dataclass
class Tenant:
    token: str
    node: str
    key: str
    incident: str
    channel: int
    rule: int
    announcement: int  # a live BGP announcement for its incident (stored; no speaker here)
    dash: dict[str, str]  # a dashboard admin session of the workspace (cookie + CSRF token)
    dash_user: int  # that admin's user id

    @property
    def rest(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def agent(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Node-UUID": self.node}


def _pcap(packets: int) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    frame = b"\xff" * 12 + b"\x08\x00" + b"\x00" * 46
    rec = struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame
    return head + rec * packets


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    db_path = tmp_path / "ftcontrol.db"
    app = create_app(str(db_path))
    app.state.agentapi_settings = settings_for(tmp_path)
    async with AsyncTestClient(app) as client:
        yield Api(app=app, client=client, db_path=db_path)


async def _tenant(api: Api, name: str) -> Tenant:
    ws = await api.workspace(name, "pro")
    c = api.client
    node_body = {"name": "edge", "ip": "198.51.100.10"}
    r = await c.post("/api/deploy", json=node_body, headers=ws.headers)
    assert r.status_code == 200, r.text
    node, key = r.json()["node_uuid"], r.json()["api_key"]
    agent = {"Authorization": f"Bearer {key}", "X-Node-UUID": node}
    incident = str(uuid.uuid4())
    figures = {"seq": 1, "family": "udp_flood", "severity": "high", "peak_pps": 1e5}
    r = await c.post(
        "/api/v1/agent/incidents",
        json={"uuid": incident, "started_at": time.time() - 5, "figures": figures},
        headers=agent,
    )
    assert r.status_code == 201, r.text
    r = await c.post(
        f"/api/v1/agent/incidents/{incident}/pcap",
        files={"file": ("c.pcap", _pcap(3), "application/vnd.tcpdump.pcap")},
        headers=agent,
    )
    assert r.status_code == 200, r.text
    # min_severity above the incident's: no delivery rows appear in the background.
    config = {"url": "http://127.0.0.1:9/h", "secret": "s" * 32, "min_severity": "critical"}
    r = await c.post(
        "/api/v1/channels",
        json={"name": "hook", "type": "webhook", "config": config},
        headers=ws.headers,
    )
    assert r.status_code == 201, r.text
    channel = r.json()["channel"]["id"]
    r = await c.post(
        f"/api/v1/nodes/{node}/rules", json={"target": "203.0.113.9"}, headers=ws.headers
    )
    assert r.status_code == 201, r.text
    rule = r.json()["rule"]["id"]
    r = await c.put(
        f"/api/v1/nodes/{node}/agent-config",
        json={"mitigation_mode": "dry_run"},
        headers=ws.headers,
    )
    assert r.status_code == 200, r.text
    dash_user = f"admin@{name}.example"
    user = await users.create_user(
        api.app.state.db, dash_user, name, "admin", "correct horse battery"
    )
    session = await login(api, dash_user, "correct horse battery")
    announcement = await _announcement(api, ws.id, node, incident)
    return Tenant(
        ws.token, node, key, incident, channel, rule, announcement, session.headers(),
        user.user_id,
    )  # fmt: skip


async def _announcement(api: Api, workspace_id: int, node_uuid: str, incident_uuid: str) -> int:
    """A live announcement as the BGP engine stores it (through its ledger)."""
    db = api.app.state.db
    [[node_id]] = await db.execute_fetchall("SELECT id FROM nodes WHERE uuid = ?", (node_uuid,))
    [[incident_id]] = await db.execute_fetchall(
        "SELECT id FROM incidents WHERE uuid = ?", (incident_uuid,)
    )
    owner = Owner(workspace_id=workspace_id, node_id=node_id, incident_id=incident_id,
                  trigger="manual")  # fmt: skip
    rule = FlowSpecRule(destination="198.51.100.10/32", protocol=17, src_port=123)
    return await SqliteLedger(db).added(rule, owner, time.time(), time.time() + 300)


def _db_state(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        state = {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr)  # noqa: S608
            for t in tables
        }
        # A session's last_seen moves with its own use (at most once a minute), whatever
        # the request asked: compared without it.
        state["dash_sessions"] = sorted(
            conn.execute(
                "SELECT id, token_hash, user_id, csrf_token, created_at FROM dash_sessions"
            )
        )
        return state


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _matrix(a: Tenant, b: Tenant) -> list[tuple[str, str, str, dict[str, Any], set[int]]]:
    """(method, route, url, request kwargs, allowed statuses): B's credentials, A's ids.

    Every REST row is asked again under /api/dash with B's dashboard admin session."""
    rows = _rest_and_agent_matrix(a, b)
    dash = [
        (
            method,
            route.replace("/api/v1/", "/api/dash/", 1),
            url.replace("/api/v1/", "/api/dash/", 1),
            {**kwargs, "headers": b.dash},
            allowed,
        )
        for method, route, url, kwargs, allowed in rows
        if route.startswith("/api/v1/") and not route.startswith("/api/v1/agent")
    ]
    U = "/api/dash/users/{user_id}"
    dash_own = [
        (
            "GET",
            "/api/dash/live/nodes/{node_uuid}",
            f"/api/dash/live/nodes/{a.node}",
            {"headers": b.dash},
            {404},
        ),
        # B's admin on A's (last) admin: neither demoted nor removed, and not even "last
        # admin" (409) is told: not found.
        (
            "PATCH",
            U,
            f"/api/dash/users/{a.dash_user}",
            {"headers": b.dash, "json": {"role": "viewer"}},
            {404},
        ),
        ("DELETE", U, f"/api/dash/users/{a.dash_user}", {"headers": b.dash}, {404}),
    ]
    return [*rows, *dash, *dash_own]  # fmt: skip


def _rest_and_agent_matrix(
    a: Tenant, b: Tenant
) -> list[tuple[str, str, str, dict[str, Any], set[int]]]:
    rest, agent = b.rest, b.agent
    fig = {"seq": 99, "family": "syn_flood", "severity": "critical", "peak_pps": 9e9}
    N, INC, CH = (
        "/api/v1/nodes/{node_uuid}",
        "/api/v1/incidents/{incident_uuid}",
        "/api/v1/channels/{channel_id}",
    )
    AI = "/api/v1/agent/incidents/{incident_uuid}"
    nf = {404}
    return [
        ("GET", N, f"/api/v1/nodes/{a.node}", {"headers": rest}, nf),
        ("PATCH", N, f"/api/v1/nodes/{a.node}", {"headers": rest, "json": {"name": "x"}}, nf),
        ("DELETE", N, f"/api/v1/nodes/{a.node}", {"headers": rest}, nf),
        ("POST", N + "/rotate-key", f"/api/v1/nodes/{a.node}/rotate-key", {"headers": rest}, nf),
        ("GET", N + "/rules", f"/api/v1/nodes/{a.node}/rules", {"headers": rest}, nf),
        ("POST", N + "/rules", f"/api/v1/nodes/{a.node}/rules",
         {"headers": rest, "json": {"target": "192.0.2.1"}}, nf),
        ("DELETE", N + "/rules/{rule_id}", f"/api/v1/nodes/{a.node}/rules/{a.rule}",
         {"headers": rest}, nf),
        # B's own node, A's rule id.
        ("DELETE", N + "/rules/{rule_id}", f"/api/v1/nodes/{b.node}/rules/{a.rule}",
         {"headers": rest}, nf),
        ("GET", N + "/agent-config", f"/api/v1/nodes/{a.node}/agent-config", {"headers": rest}, nf),
        ("PUT", N + "/agent-config", f"/api/v1/nodes/{a.node}/agent-config",
         {"headers": rest, "json": {"mitigation_mode": "off"}}, nf),
        ("GET", N + "/traffic", f"/api/v1/nodes/{a.node}/traffic", {"headers": rest}, nf),
        ("GET", N + "/agent", f"/api/v1/nodes/{a.node}/agent", {"headers": rest}, nf),
        ("GET", INC, f"/api/v1/incidents/{a.incident}", {"headers": rest}, nf),
        ("PATCH", INC, f"/api/v1/incidents/{a.incident}",
         {"headers": rest, "json": {"status": "false_positive"}}, nf),
        ("GET", INC + "/pcap", f"/api/v1/incidents/{a.incident}/pcap", {"headers": rest}, nf),
        ("GET", INC + "/timeline", f"/api/v1/incidents/{a.incident}/timeline",
         {"headers": rest}, nf),
        ("POST", INC + "/escalate", f"/api/v1/incidents/{a.incident}/escalate",
         {"headers": rest, "json": {"action": "rtbh"}}, nf),
        ("DELETE", "/api/v1/bgp/announcements/{announcement_id}",
         f"/api/v1/bgp/announcements/{a.announcement}", {"headers": rest}, nf),
        ("GET", "/api/v1/incidents", f"/api/v1/incidents?node={a.node}", {"headers": rest}, nf),
        ("DELETE", CH, f"/api/v1/channels/{a.channel}", {"headers": rest}, nf),
        ("POST", CH + "/test", f"/api/v1/channels/{a.channel}/test", {"headers": rest}, nf),
        ("GET", CH + "/deliveries", f"/api/v1/channels/{a.channel}/deliveries",
         {"headers": rest}, nf),
        # Agent API: B's node key on A's incident.
        ("POST", "/api/v1/agent/incidents", "/api/v1/agent/incidents",
         {"headers": agent,
          "json": {"uuid": a.incident, "started_at": time.time(), "figures": fig}}, nf),
        ("POST", AI, f"/api/v1/agent/incidents/{a.incident}",
         {"headers": agent, "json": {"figures": fig}}, nf),
        ("POST", AI + "/resolve", f"/api/v1/agent/incidents/{a.incident}/resolve",
         {"headers": agent, "json": {"ended_at": time.time(), "figures": fig}}, nf),
        ("POST", AI + "/pcap", f"/api/v1/agent/incidents/{a.incident}/pcap",
         {"headers": agent, "files": {"file": ("x.pcap", _pcap(1), "application/octet-stream")}},
         nf),
        # B's key presented with A's node UUID: the pair does not authenticate.
        ("POST", "/api/v1/agent/heartbeat", "/api/v1/agent/heartbeat",
         {"headers": {**agent, "X-Node-UUID": a.node},
          "json": {"version": "x", "xdp_mode": "native"}}, {401}),
        ("GET", "/api/v1/agent/config", "/api/v1/agent/config",
         {"headers": {**agent, "X-Node-UUID": a.node}}, {401}),
        ("POST", AI, f"/api/v1/agent/incidents/{a.incident}",
         {"headers": {**agent, "X-Node-UUID": a.node}, "json": {"figures": fig}}, {401}),
    ]  # fmt: skip


def _id_routes(api: Api) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in api.app.routes:
        if not isinstance(route, HTTPRoute) or "{" not in route.path_format:
            continue
        # /install/{filename}: the public agent wheel, in no workspace (control/install).
        if route.path_format.startswith(("/schema", "/install/")):
            continue
        if route.path_format.startswith("/dash/"):
            continue  # dashboard page shells and their static files: the same bytes for any id

        for method in route.methods:
            if method not in ("OPTIONS", "HEAD"):
                found.add((str(method), route.path_format))
    return found


async def test_other_workspace_ids_are_not_found_and_nothing_changes(
    api: Api, tmp_path: Path
) -> None:
    a = await _tenant(api, "alpha")
    b = await _tenant(api, "beta")
    matrix = _matrix(a, b)
    covered = {(m, route) for m, route, *_ in matrix}
    assert _id_routes(api) <= covered, _id_routes(api) - covered

    await api.app.state.agentapi.metrics.flush()
    before = _db_state(api.db_path), _files(tmp_path / "data")
    answers = []
    for method, _, url, kwargs, allowed in matrix:
        r = await api.client.request(method, url, **kwargs)
        answers.append((method, url, r.status_code))
        assert r.status_code in allowed, (method, url, r.status_code, r.text)
        assert r.json()["ok"] is False
    await api.app.state.agentapi.metrics.flush()
    assert (_db_state(api.db_path), _files(tmp_path / "data")) == before

    # A still sees its own objects exactly as before.
    for url in (f"/api/v1/nodes/{a.node}", f"/api/v1/incidents/{a.incident}"):
        assert (await api.client.get(url, headers=a.rest)).status_code == 200
    r = await api.client.get(f"/api/v1/incidents/{a.incident}", headers=a.rest)
    assert (r.json()["incident"]["status"], r.json()["incident"]["severity"]) == ("active", "high")
    r = await api.client.get(f"/api/v1/incidents/{a.incident}/pcap", headers=a.rest)
    assert r.content == _pcap(3)
    assert len(answers) == len(matrix)


async def test_lists_never_show_the_other_workspace(api: Api) -> None:
    a = await _tenant(api, "alpha")
    b = await _tenant(api, "beta")
    secrets_of_a = {a.node, a.incident, a.token, a.key}
    for url in (
        "/api/v1/nodes",
        "/api/v1/incidents",
        "/api/v1/channels",
        "/api/v1/status",
        "/api/v1/workspace",
        "/api/v1/analytics/summary",
        f"/api/v1/nodes/{b.node}/rules",
        f"/api/v1/channels/{b.channel}/deliveries",
    ):
        r = await api.client.get(url, headers=b.rest)
        assert r.status_code == 200, (url, r.text)
        for secret in secrets_of_a:
            assert secret not in r.text, (url, secret)
        r = await api.client.get(url.replace("/api/v1/", "/api/dash/"), headers=b.dash)
        assert r.status_code == 200, (url, r.text)
        for secret in secrets_of_a:
            assert secret not in r.text, (url, secret)
    # B's lists hold exactly B's objects.
    nodes = (await api.client.get("/api/v1/nodes", headers=b.rest)).json()["nodes"]
    assert [n["uuid"] for n in nodes] == [b.node]
    nodes = (await api.client.get("/api/dash/nodes", headers=b.dash)).json()["nodes"]
    assert [n["uuid"] for n in nodes] == [b.node]
    users_of_b = (await api.client.get("/api/dash/users", headers=b.dash)).json()["users"]
    assert [u["email"] for u in users_of_b] == ["admin@beta.example"]
    incidents = (await api.client.get("/api/v1/incidents", headers=b.rest)).json()["incidents"]
    assert [i["uuid"] for i in incidents] == [b.incident]
    channels = (await api.client.get("/api/v1/channels", headers=b.rest)).json()["channels"]
    assert [c["id"] for c in channels] == [b.channel]
    rules = (await api.client.get(f"/api/v1/nodes/{b.node}/rules", headers=b.rest)).json()
    assert [r["id"] for r in rules["rules"]] == [b.rule]
    # B's agent sees its own overrides and commands only.
    config = (await api.client.get("/api/v1/agent/config", headers=b.agent)).json()["config"]
    assert [c["target"] for c in config["commands"]] == ["203.0.113.9"]
    assert config["commands"][0]["id"] == b.rule


async def _fleet_incident(api: Api, node_uuid: str) -> str:
    """A fleet incident of the node's workspace (group 'workspace') over that node."""
    db = api.app.state.db
    [[node_id, ws_id]] = await db.execute_fetchall(
        "SELECT id, workspace_id FROM nodes WHERE uuid = ?", (node_uuid,)
    )
    opened = await api.incidents.open_fleet(ws_id, "workspace", time.time() - 5, figures())
    await api.incidents.set_fleet_nodes(
        ws_id,
        opened.uuid,
        [FleetNodeFigures(node_id=node_id, share=1, peak_pps=1e5, peak_bps=1e9,
                          state="reporting")],
    )  # fmt: skip
    return opened.uuid


async def test_another_workspace_never_sees_a_fleet_incident(api: Api) -> None:
    a = await _tenant(api, "alpha")
    b = await _tenant(api, "beta")
    a_fleet = await _fleet_incident(api, a.node)
    b_fleet = await _fleet_incident(api, b.node)
    await api.app.state.agentapi.metrics.flush()
    before = _db_state(api.db_path)
    fig = {"seq": 99, "family": "syn_flood", "severity": "critical", "peak_pps": 9e9}
    inc = f"/api/v1/incidents/{a_fleet}"
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", inc, {"headers": b.rest}),
        ("PATCH", inc, {"headers": b.rest, "json": {"status": "false_positive"}}),
        ("GET", inc + "/pcap", {"headers": b.rest}),
        ("POST", inc + "/escalate", {"headers": b.rest, "json": {"action": "flowspec"}}),
        ("GET", inc.replace("/api/v1/", "/api/dash/"), {"headers": b.dash}),
        ("PATCH", inc.replace("/api/v1/", "/api/dash/"),
         {"headers": b.dash, "json": {"status": "resolved"}}),
        # Agents never write a fleet incident: not A's, not even their own workspace's.
        ("POST", f"/api/v1/agent/incidents/{a_fleet}", {"headers": b.agent,
                                                        "json": {"figures": fig}}),
        ("POST", f"/api/v1/agent/incidents/{b_fleet}", {"headers": b.agent,
                                                        "json": {"figures": fig}}),
        ("POST", f"/api/v1/agent/incidents/{b_fleet}/resolve",
         {"headers": b.agent, "json": {"ended_at": time.time(), "figures": fig}}),
    ]  # fmt: skip
    for method, url, kwargs in attempts:
        r = await api.client.request(method, url, **kwargs)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
        assert r.json()["ok"] is False
    await api.app.state.agentapi.metrics.flush()
    assert _db_state(api.db_path) == before

    # B's lists and figures: its own fleet incident, never A's.
    for url, params in (
        ("/api/v1/incidents", {}),
        ("/api/v1/incidents", {"scope": "fleet"}),
        ("/api/v1/status", {}),
        ("/api/v1/analytics/summary", {}),
        ("/api/v1/nodes", {}),
    ):
        for prefix, headers in (("/api/v1/", b.rest), ("/api/dash/", b.dash)):
            r = await api.client.get(url.replace("/api/v1/", prefix), headers=headers,
                                     params=params)  # fmt: skip
            assert r.status_code == 200, (url, r.text)
            assert a_fleet not in r.text and a.node not in r.text, url
    fleet_of_b = (
        await api.client.get("/api/v1/incidents", headers=b.rest, params={"scope": "fleet"})
    ).json()
    assert [i["uuid"] for i in fleet_of_b["incidents"]] == [b_fleet]
    assert [n["node_uuid"] for n in fleet_of_b["incidents"][0]["nodes"]] == [b.node]
    status = (await api.client.get("/api/v1/status", headers=b.rest)).json()
    assert status["fleet_incidents_active"] == 1
    # A's own token sees its fleet incident.
    r = await api.client.get(inc, headers=a.rest)
    assert r.status_code == 200 and r.json()["incident"]["nodes"][0]["node_uuid"] == a.node

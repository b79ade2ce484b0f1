"""GET /api/v1/incidents/{uuid}/timeline: the node's one-second points over the incident
while the store keeps them (a fresh incident draws at once), one-minute roll-ups for the
older part of its span, scoped to the caller's workspace."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control.app import create_app
from control.incidents.timeline import MARGIN_S
from tests.api.agentapi.conftest import Agent, deploy, eventually, settings_for
from tests.api.conftest import Api, Workspace, assert_error
from tests.api.incidents.fleet_data import fleet_incident

RAW_RETENTION_S = 300  # the test's store keeps one-second points 5 minutes


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The real app whose metrics store rolls up every 0.2 s and keeps raw points 5 min
    (pruned never during the test: the timeline must not rely on the pruning)."""
    db_path = tmp_path / "ftcontrol.db"
    app = create_app(str(db_path))
    app.state.agentapi_settings = settings_for(tmp_path, raw_retention_s=float(RAW_RETENTION_S))
    async with AsyncTestClient(app) as client:
        yield Api(app=app, client=client, db_path=db_path)


@pytest.fixture
async def agent(api: Api, ws: Workspace) -> Agent:
    return await deploy(api, ws)


def point(ts: int, pps: float) -> dict[str, Any]:
    return {"ts": float(ts), "pps": pps, "bps": pps * 8000, "dropped_pps": pps / 2}


async def post(api: Api, agent: Agent, points: list[dict[str, Any]]) -> None:
    for i in range(0, len(points), 500):
        r = await api.client.post(
            "/api/v1/agent/metrics", json={"points": points[i : i + 500]}, headers=agent.headers
        )
        assert r.status_code == 200, r.text


def unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


async def timeline(api: Api, ws: Workspace, uuid: str) -> dict[str, Any]:
    r = await api.get(f"/api/v1/incidents/{uuid}/timeline", ws)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_fresh_incident_draws_its_one_second_points(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    now = int(time.time())
    # 90 quiet seconds, then the attack's last 20 (the incident opened 20 s ago)
    await post(
        api, agent, [point(t, 1000.0 if t < now - 20 else 90_000.0) for t in range(now - 110, now)]
    )
    opened = await api.incident(ws, agent.uuid, started_at=now - 20.0)
    body = await timeline(api, ws, opened.uuid)
    assert (body["incident_uuid"], body["node_uuid"]) == (opened.uuid, agent.uuid)
    points = body["points"]
    # every stored second of the span (a minute before the start on), none rolled up
    assert [unix(p["t"]) for p in points] == list(range(now - 20 - MARGIN_S, now))
    assert {p["step_sec"] for p in points} == {1}
    assert unix(body["seconds_since"]) == unix(body["since"]) == now - 20 - MARGIN_S
    assert [p["pps"] for p in points[-20:]] == [90_000.0] * 20
    assert points[0]["pps"] == 1000.0 and points[-1]["dropped_pps"] == 45_000.0
    # The node's traffic history (one-minute roll-ups) has at most two points for it.
    r = await api.get(f"/api/v1/nodes/{agent.uuid}/traffic", ws, range="1h")
    assert len(r.json()["points"]) <= 3


async def test_roll_ups_before_the_seconds_still_kept(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    now = int(time.time())
    start = now - 10 * 60  # ended a minute ago: its first minutes' seconds are gone
    await post(api, agent, [point(t, 50_000.0) for t in range(start - 120, now)])
    opened = await api.incident(ws, agent.uuid, started_at=float(start))
    await api.incidents.resolve(ws.id, opened.uuid, ended_at=float(now - 60))

    async def rolled_up() -> bool:
        rows = await api.app.state.db.execute_fetchall("SELECT count(*) FROM node_metrics_minute")
        return int(next(iter(rows))[0]) >= 11

    assert await eventually(rolled_up)
    body = await timeline(api, ws, opened.uuid)
    seconds_since = unix(body["seconds_since"])
    # the first whole minute whose seconds are all kept
    assert seconds_since % 60 == 0 and now - RAW_RETENTION_S <= seconds_since < now - 240
    minutes = [p for p in body["points"] if p["step_sec"] == 60]
    seconds = [p for p in body["points"] if p["step_sec"] == 1]
    assert body["points"] == minutes + seconds  # in time order, roll-ups first
    assert minutes and all(unix(p["t"]) < seconds_since and unix(p["t"]) % 60 == 0 for p in minutes)
    assert unix(minutes[0]["t"]) == (start - MARGIN_S) // 60 * 60
    assert all(p["pps"] == 50_000.0 for p in minutes)
    # then every second up to a minute after the end
    assert [unix(p["t"]) for p in seconds] == list(range(seconds_since, now))


async def test_only_the_callers_workspace_and_only_a_nodes_incident(
    api: Api, ws: Workspace, other: Workspace, agent: Agent
) -> None:
    opened = await api.incident(ws, agent.uuid, started_at=time.time() - 5)
    assert_error(await api.get(f"/api/v1/incidents/{opened.uuid}/timeline", other), 404)
    assert_error(await api.get("/api/v1/incidents/nope/timeline", ws), 404, "incident")
    fleet, _ = await fleet_incident(api, ws, node_names=("edge-2", "edge-3"))
    assert_error(await api.get(f"/api/v1/incidents/{fleet.uuid}/timeline", ws), 404, "fleet")

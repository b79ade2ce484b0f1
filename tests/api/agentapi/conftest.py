"""Fixtures for the Agent API tests: the real app on a fresh SQLite file, with short
background intervals, plus a registered node and its agent credentials."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control.agentapi.settings import AgentApiSettings
from control.app import create_app
from control.incidents.event_bus import IncidentEvent
from tests.api.conftest import Api, Workspace


@dataclass
class Agent:
    uuid: str
    api_key: str
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "X-Node-UUID": self.uuid}


def settings_for(tmp_path: Path, **kw: Any) -> AgentApiSettings:
    base: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "flush_interval_s": 0.05,
        "rollup_interval_s": 0.2,
        "gauges_interval_s": 0.1,
        "prune_interval_s": 3600.0,
    }
    base.update(kw)
    return AgentApiSettings(**base)


@pytest.fixture
def agent_settings(tmp_path: Path) -> AgentApiSettings:
    return settings_for(tmp_path)


@pytest.fixture
async def api(tmp_path: Path, agent_settings: AgentApiSettings) -> AsyncIterator[Api]:
    db_path = tmp_path / "ftcontrol.db"
    app = create_app(str(db_path), offline_after_sec=15.0)
    app.state.agentapi_settings = agent_settings
    async with AsyncTestClient(app) as client:
        recorder = Api(app=app, client=client, db_path=db_path)

        async def record(event: IncidentEvent) -> None:
            recorder.events.append(event)

        app.state.events.subscribe(record)
        yield recorder


async def deploy(api: Api, ws: Workspace, name: str = "edge-1", ip: str = "198.51.100.10") -> Agent:
    r = await api.client.post("/api/deploy", json={"name": name, "ip": ip}, headers=ws.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return Agent(uuid=body["node_uuid"], api_key=body["api_key"], name=name)


@pytest.fixture
async def agent(api: Api, ws: Workspace) -> Agent:
    return await deploy(api, ws)


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 5.0) -> bool:
    """Poll an async condition (background flushes are asynchronous by design)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return await check()

"""Fixtures for the control plane API tests: a fresh SQLite file and app per test.

Incidents are created through the store layer (IncidentService), as the Agent API would.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from control.app import create_app
from control.incidents.event_bus import IncidentEvent
from control.incidents.schemas import Incident
from control.incidents.service import IncidentReport, IncidentService
from control.workspace.service import create_workspace

logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class Workspace:
    id: int
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    app: Litestar
    client: AsyncTestClient[Litestar]
    db_path: Path
    events: list[IncidentEvent] = field(default_factory=list)

    @property
    def incidents(self) -> IncidentService:
        service: IncidentService = self.app.state.incidents
        return service

    async def workspace(self, name: str = "acme", plan: str = "free") -> Workspace:
        workspace_id, token = await create_workspace(self.app.state.db, name, plan)
        return Workspace(id=workspace_id, name=name, token=token)

    async def node(self, ws: Workspace, name: str = "web-prod-1", **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/nodes",
            json={"name": name, "ip": "203.0.113.10", **body},
            headers=ws.headers,
        )
        assert response.status_code == 201, response.text
        node: dict[str, Any] = response.json()["node"]
        return node

    async def incident(self, ws: Workspace, node_uuid: str, **report: Any) -> Incident:
        fields: dict[str, Any] = {"family": "udp_flood", "severity": "high", **report}
        return await self.incidents.open(ws.id, node_uuid, IncidentReport(**fields))

    async def sql(self, query: str, *args: Any) -> None:
        db = self.app.state.db
        await db.execute(query, args)

    async def get(self, path: str, ws: Workspace, **params: Any) -> Any:
        return await self.client.get(path, headers=ws.headers, params=params)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    db_path = tmp_path / "ftcontrol.db"
    app = create_app(str(db_path))
    async with AsyncTestClient(app) as client:
        recorder = Api(app=app, client=client, db_path=db_path)

        async def record(event: IncidentEvent) -> None:
            recorder.events.append(event)

        app.state.events.subscribe(record)
        yield recorder


@pytest.fixture
async def ws(api: Api) -> Workspace:
    return await api.workspace("acme", "pro")


@pytest.fixture
async def other(api: Api) -> Workspace:
    return await api.workspace("globex", "pro")


def assert_error(response: Any, status: int, *words: str) -> dict[str, Any]:
    """The error shape every failure shares: {"ok": false, "error": "<reason>"}."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is False
    assert isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"], (word, body)
    return body

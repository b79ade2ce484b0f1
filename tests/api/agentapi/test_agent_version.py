"""GET /api/v1/nodes/{uuid}/agent flags an agent older than this control plane's wheel."""

from __future__ import annotations

from typing import Any

import control
from tests.api.agentapi.conftest import Agent
from tests.api.agentapi.test_heartbeat_config import BEAT
from tests.api.conftest import Api, Workspace


async def _agent_state(api: Api, ws: Workspace, agent: Agent) -> dict[str, Any]:
    r = await api.client.get(f"/api/v1/nodes/{agent.uuid}/agent", headers=ws.headers)
    assert r.status_code == 200, r.text
    state: dict[str, Any] = r.json()["agent"]
    return state


async def test_outdated_follows_the_heartbeat_version(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    assert (await _agent_state(api, ws, agent))["outdated"] is None  # no heartbeat yet
    for version, outdated in (("0.0.9", True), (control.__version__, False), ("9.0", False)):
        r = await api.client.post(
            "/api/v1/agent/heartbeat", json={**BEAT, "version": version}, headers=agent.headers
        )
        assert r.status_code == 200, r.text
        state = await _agent_state(api, ws, agent)
        assert (state["version"], state["outdated"]) == (version, outdated)

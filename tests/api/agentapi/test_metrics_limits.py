"""POST metrics with a small per-post limit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from control.agentapi.settings import AgentApiSettings
from tests.api.agentapi.conftest import Agent, settings_for
from tests.api.conftest import Api, assert_error


@pytest.fixture
def agent_settings(tmp_path: Path) -> AgentApiSettings:
    return settings_for(tmp_path, max_points_per_post=50)


async def test_too_many_points_in_one_post(api: Api, agent: Agent) -> None:
    now = int(time.time())
    points = [{"ts": now - i, "pps": 1.0, "bps": 8.0} for i in range(51)]
    r = await api.client.post(
        "/api/v1/agent/metrics", json={"points": points}, headers=agent.headers
    )
    assert_error(r, 413, "at most 50")
    points = points[:50]
    r = await api.client.post(
        "/api/v1/agent/metrics", json={"points": points}, headers=agent.headers
    )
    assert r.status_code == 200, r.text

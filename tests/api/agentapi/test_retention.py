"""Retention: raw points older than raw_retention_s and roll-ups older than
rollup_retention_s are deleted by the background task; newer ones stay."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from control.agentapi.runtime import AgentApi
from control.agentapi.settings import AgentApiSettings
from control.core.db import transaction
from ftcontract.agent_api import MetricPoint
from tests.api.agentapi.conftest import Agent, deploy, eventually, settings_for
from tests.api.conftest import Api, Workspace


@pytest.fixture
def agent_settings(tmp_path: Path) -> AgentApiSettings:
    # short retentions and a pruning pass every 0.3 s
    return settings_for(
        tmp_path, raw_retention_s=600.0, rollup_retention_s=3 * 86400.0, prune_interval_s=0.3
    )


async def count(api: Api, table: str) -> int:
    rows = await api.app.state.db.execute_fetchall(f"SELECT count(*) FROM {table}")  # noqa: S608
    return int(next(iter(rows))[0])


async def test_background_task_prunes_by_age(api: Api, agent: Agent) -> None:
    now = int(time.time())
    points = [{"ts": now - 1200 + i, "pps": 1.0, "bps": 8.0} for i in range(5)]  # 20 min old
    points += [{"ts": now - i, "pps": 2.0, "bps": 16.0} for i in range(3)]  # fresh
    r = await api.client.post(
        "/api/v1/agent/metrics", json={"points": points}, headers=agent.headers
    )
    assert r.status_code == 200, r.text
    db = api.app.state.db
    node_id = next(iter(await db.execute_fetchall("SELECT id FROM nodes")))[0]
    old_minute = (now - 4 * 86400) // 60 * 60
    async with transaction(db):
        await db.execute(
            "INSERT INTO node_metrics_minute "
            "VALUES (?, ?, 60, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, NULL)",
            (node_id, old_minute),
        )

    async def pruned() -> bool:
        return await count(api, "node_metrics_raw") == 3 and not list(
            await db.execute_fetchall(
                "SELECT 1 FROM node_metrics_minute WHERE minute = ?", (old_minute,)
            )
        )

    assert await eventually(pruned, within_s=10.0)
    rows = await db.execute_fetchall("SELECT ts FROM node_metrics_raw ORDER BY ts")
    assert [r[0] for r in rows] == [now - 2, now - 1, now]
    # the roll-ups of the pruned raw minutes were kept (90-day history)
    minutes = await db.execute_fetchall("SELECT minute, samples FROM node_metrics_minute")
    assert ((now - 1200) // 60 * 60) in {m[0] for m in minutes}


async def test_prune_counts_what_it_deleted(api: Api, agent: Agent) -> None:
    store = api.app.state.agentapi
    assert isinstance(store, AgentApi)
    now = time.time()
    r = await api.client.post(
        "/api/v1/agent/metrics",
        json={"points": [{"ts": now - 700, "pps": 1.0, "bps": 1.0}]},
        headers=agent.headers,
    )
    assert r.status_code == 200
    result = await store.metrics.prune(now=now + 86400 * 4)
    assert result.raw_deleted == 1
    assert result.rollups_deleted == 1
    assert await eventually(lambda: _zero(api))


async def _zero(api: Api) -> bool:
    return (
        await count(api, "node_metrics_raw") == 0 and await count(api, "node_metrics_minute") == 0
    )


async def test_points_of_a_node_removed_for_good_do_not_block_the_others(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    other = await deploy(api, ws, name="edge-2", ip="198.51.100.11")
    store = api.app.state.agentapi.metrics
    db = api.app.state.db
    now = int(time.time())
    ids = {r[1]: r[0] for r in await db.execute_fetchall("SELECT id, uuid FROM nodes")}
    async with store._flush_lock:  # hold the background writer while both points land
        # (A POST is answered only once its points are written, so the points are handed
        # to the store directly here, as the handler does before it waits.)
        for a in (agent, other):
            store.accept(ids[a.uuid], [MetricPoint(ts=float(now), pps=1.0, bps=8.0)])
        async with transaction(db):
            await db.execute("DELETE FROM nodes WHERE uuid = ?", (agent.uuid,))

    async def only_the_live_node_stored() -> bool:
        rows = await db.execute_fetchall(
            "SELECT n.uuid FROM node_metrics_raw m JOIN nodes n ON n.id = m.node_id"
        )
        return [r[0] for r in rows] == [other.uuid] and store.buffered == 0

    assert await eventually(only_the_live_node_stored)

"""POST metrics: node live columns and baseline, idempotent replays, roll-ups, retention,
traffic history and the per-node Prometheus gauges."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.agentapi.conftest import Agent, eventually
from tests.api.conftest import Api, Workspace, assert_error


def point(ts: float, pps: float, **kw: Any) -> dict[str, Any]:
    return {
        "ts": ts,
        "pps": pps,
        "bps": pps * 8000,
        "protocols": {"tcp": pps * 0.75, "udp": pps * 0.25, "icmp": 0.0, "other": 0.0},
        "baseline_avg_pps": 100.0,
        "baseline_p95_pps": 150.0,
        "baseline_p99_pps": 180.0,
        **kw,
    }


async def post(api: Api, agent: Agent, points: list[dict[str, Any]]) -> Any:
    return await api.client.post(
        "/api/v1/agent/metrics", json={"points": points}, headers=agent.headers
    )


async def raw_count(api: Api) -> int:
    rows = await api.app.state.db.execute_fetchall("SELECT count(*) FROM node_metrics_raw")
    return int(next(iter(rows))[0])


async def node(api: Api, ws: Workspace, agent: Agent) -> dict[str, Any]:
    r = await api.client.get(f"/api/v1/nodes/{agent.uuid}", headers=ws.headers)
    body: dict[str, Any] = r.json()["node"]
    return body


async def test_points_set_last_pps_and_baseline(api: Api, ws: Workspace, agent: Agent) -> None:
    now = int(time.time())
    r = await post(api, agent, [point(now - 2 + i, 100.0 + i) for i in range(3)])
    assert r.status_code == 200, r.text
    reply = r.json()
    # the node's fleet version comes along (an agent whose long-poll broke re-polls on it)
    assert isinstance(reply.pop("fleet_version"), int)
    assert reply == {"ok": True, "accepted": 3}

    async def applied() -> bool:
        return bool((await node(api, ws, agent))["last_pps"] == 102.0)

    assert await eventually(applied)
    n = await node(api, ws, agent)
    assert n["baseline"]["avg_pps"] == 100.0
    assert n["baseline"]["p95_pps"] == 150.0

    async def mix() -> bool:
        b = (await node(api, ws, agent))["baseline"]
        return bool(b["protocols"])

    assert await eventually(mix)  # after the roll-up
    assert (await node(api, ws, agent))["baseline"]["protocols"] == {
        "tcp": 75.0, "udp": 25.0, "icmp": 0.0, "other": 0.0,
    }  # fmt: skip


async def test_replay_duplicates_nothing_and_old_points_do_not_win(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    now = int(time.time())
    batch = [point(now - 10 + i, 50.0) for i in range(10)]
    await post(api, agent, batch)
    await post(api, agent, batch)  # a resend after a lost reply
    await post(api, agent, [point(now, 999.0)])
    assert await eventually(lambda: _eq(raw_count(api), 11))
    # an outage's backlog arrives after newer points: last_pps stays the newest
    await post(api, agent, [point(now - 100 + i, 7.0) for i in range(5)])
    assert await eventually(lambda: _eq(raw_count(api), 16))
    assert (await node(api, ws, agent))["last_pps"] == 999.0


async def _eq(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def test_bad_points_are_refused_naming_the_field(api: Api, agent: Agent) -> None:
    now = time.time()
    assert_error(await post(api, agent, [point(now, -1.0)]), 400, "points[0].pps")
    assert_error(await post(api, agent, [point(now + 3600, 1.0)]), 400, "points[0].ts")
    assert_error(await post(api, agent, [{"ts": now, "pps": 1}]), 400, "bps")
    bad_field = point(now, 1.0, color="blue")
    assert_error(await post(api, agent, [bad_field]), 400, "color")
    assert await raw_count(api) == 0


async def test_one_minute_rollups_and_traffic_history(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    minute = int(time.time()) // 60 * 60 - 120  # two whole minutes ago
    pts = [point(minute + s, 100.0) for s in range(60)]
    pts += [point(minute + 60 + s, 300.0 if s < 30 else 100.0, attack=s < 30) for s in range(60)]
    assert (await post(api, agent, pts)).status_code == 200

    async def rolled() -> list[Any]:
        return list(
            await api.app.state.db.execute_fetchall(
                "SELECT minute, samples, pps_avg, pps_max, attack_samples "
                "FROM node_metrics_minute ORDER BY minute"
            )
        )

    assert await eventually(lambda: _len_is(rolled(), 2))
    assert [tuple(r) for r in await rolled()] == [
        (minute, 60, 100.0, 100.0, 0),
        (minute + 60, 60, 200.0, 300.0, 30),
    ]
    r = await api.client.get(
        f"/api/v1/nodes/{agent.uuid}/traffic", params={"range": "1h"}, headers=ws.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["step_sec"] == 60
    assert [p["pps_avg"] for p in body["points"]] == [100.0, 200.0]
    assert body["pps_max"] == 300.0
    assert body["attack_minutes"] == 1
    assert body["pps_avg"] == 150.0
    # The workspace's analytics summary reads the same roll-ups.
    r = await api.client.get(
        "/api/v1/analytics/summary", params={"range": "7d"}, headers=ws.headers
    )
    assert r.status_code == 200, r.text
    traffic = r.json()["traffic"]
    assert (traffic["avg_pps"], traffic["peak_pps"], traffic["attack_minutes"]) == (150.0, 300.0, 1)
    assert traffic["nodes_reporting"] == 1
    r = await api.client.get(
        f"/api/v1/nodes/{agent.uuid}/traffic", params={"range": "2y"}, headers=ws.headers
    )
    assert_error(r, 400, "range")


async def _len_is(rows: Any, n: int) -> bool:
    return len(await rows) == n


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_prometheus_gauges_per_node(api: Api, ws: Workspace, agent: Agent) -> None:
    now = int(time.time())
    await post(api, agent, [point(now, 4000.0, dropped_pps=1000.0)])
    labels = {"node": agent.name, "ip": "198.51.100.10", "workspace": ws.name}

    def key(name: str, **extra: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return name, frozenset({**labels, **extra}.items())

    async def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return samples((await api.client.get("/metrics")).text)

    async def scraped() -> bool:
        return (await scrape()).get(key("ftcontrol_node_pps")) == 4000.0

    assert await eventually(scraped)
    got = await scrape()
    assert got[key("ftcontrol_node_bps")] == 4000.0 * 8000
    assert got[key("ftcontrol_node_dropped_pps")] == 1000.0
    assert got[key("ftcontrol_node_protocol_share", protocol="tcp")] == 75.0
    assert got[key("ftcontrol_node_protocol_share", protocol="udp")] == 25.0
    assert got[key("ftcontrol_node_baseline_avg_pps")] == 100.0
    assert got[key("ftcontrol_node_baseline_p95_pps")] == 150.0
    assert got[key("ftcontrol_node_baseline_p99_pps")] == 180.0
    assert got[key("ftcontrol_node_incidents_active")] == 0.0
    assert got[key("ftcontrol_node_incidents_24h")] == 0.0

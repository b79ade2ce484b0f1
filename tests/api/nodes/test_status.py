"""GET /api/v1/status: overall verdict and per-node status."""

from __future__ import annotations

import time
from typing import Any

from tests.api.conftest import Api, Workspace, assert_error


async def _heartbeat(api: Api, uuid: str, pps: float = 4521, p95: float | None = None) -> None:
    await api.sql(
        "UPDATE nodes SET last_seen = ?, last_pps = ?, baseline_avg_pps = ?, "
        "baseline_p95_pps = ? WHERE uuid = ?",
        time.time(),
        pps,
        None if p95 is None else p95 / 2,
        p95,
        uuid,
    )


async def test_overall_follows_the_nodes(api: Api, ws: Workspace, other: Workspace) -> None:
    async def status() -> dict[str, Any]:
        r = await api.get("/api/v1/status", ws)
        assert r.status_code == 200
        body: dict[str, Any] = r.json()
        assert body["ok"] is True
        return body

    empty = await status()
    assert (empty["overall"], empty["nodes_total"], empty["nodes"]) == ("operational", 0, [])

    a = await api.node(ws, "a")
    b = await api.node(ws, "b")
    await api.node(other, "elsewhere")  # never counted here
    assert (await status())["overall"] == "degraded"  # nobody has reported yet
    await _heartbeat(api, a["uuid"])
    await _heartbeat(api, b["uuid"], pps=100, p95=1000)
    healthy = await status()
    assert (
        healthy["overall"],
        healthy["nodes_total"],
        healthy["nodes_online"],
        healthy["under_attack"],
    ) == ("operational", 2, 2, 0)
    assert healthy["nodes"][0] == {
        "uuid": a["uuid"],
        "name": "a",
        "status": "online",
        "pps": 4521,
        "active_incidents": 0,
    }

    await _heartbeat(api, b["uuid"], pps=5000, p95=1000)
    elevated = await status()
    assert elevated["overall"] == "degraded"
    assert [n["status"] for n in elevated["nodes"]] == ["online", "elevated"]

    await api.incident(ws, b["uuid"])
    attacked = await status()
    assert (attacked["overall"], attacked["under_attack"], attacked["nodes_online"]) == (
        "under_attack",
        1,
        2,
    )
    assert attacked["nodes"][1]["active_incidents"] == 1

    await api.sql("UPDATE nodes SET last_seen = ? WHERE uuid = ?", time.time() - 600, a["uuid"])
    mixed = await status()
    assert (mixed["overall"], mixed["nodes_online"]) == ("under_attack", 1)
    assert_error(await api.client.get("/api/v1/status"), 401)

"""GET /api/v1/analytics/summary for 7d, 30d, 90d and 365d."""

from __future__ import annotations

import time
from typing import Any

import pytest

from control.incidents.schemas import MitigationRule
from control.incidents.service import IncidentChange
from tests.api.conftest import Api, Workspace, assert_error

DAY = 86400.0


async def test_summary_over_each_range(api: Api, ws: Workspace, other: Workspace) -> None:
    a = await api.node(ws, "a")
    b = await api.node(ws, "b")
    now = time.time()
    # (node, days ago, family, severity, peak, duration s, seconds to mitigate)
    plan = [
        (a, 1, "udp_flood", "high", 50_000, 100, 2.0),
        (a, 10, "syn_flood", "critical", 900_000, 200, 4.0),
        (b, 60, "udp_flood", "low", 7_000, 50, None),
        (b, 200, "dns_amplification", "medium", 300_000, 30, 1.0),
        (b, 400, "udp_flood", "critical", 9_999_999, 10, 1.0),  # outside every range
    ]
    for node, days, family, severity, peak, duration, mttm in plan:
        start = now - days * DAY
        inc = await api.incident(
            ws, node["uuid"], family=family, severity=severity, started_at=start, peak_pps=peak
        )
        if mttm is not None:
            rule = MitigationRule(kind="signature", match="udp")
            await api.incidents.update(ws.id, inc.uuid, IncidentChange(mitigation_rules=[rule]))
            await api.sql(
                "UPDATE incidents SET mitigated_at = ? WHERE uuid = ?", start + mttm, inc.uuid
            )
        await api.incidents.resolve(ws.id, inc.uuid, ended_at=start + duration)
    fp = await api.incident(ws, a["uuid"], started_at=now - 2 * DAY, peak_pps=10**9)
    await api.incidents.set_status(ws.id, fp.uuid, "false_positive")
    theirs = await api.node(other, "x")
    await api.incident(other, theirs["uuid"], started_at=now - DAY, peak_pps=10**8)

    async def summary(range_: str) -> dict[str, Any]:
        r = await api.get("/api/v1/analytics/summary", ws, range=range_)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert body["ok"] is True and body["range"] == range_
        return body

    week = await summary("7d")
    assert week["incidents_total"] == 1 and week["false_positives"] == 1
    assert week["by_family"] == {"udp_flood": 1}
    assert week["by_severity"] == {"low": 0, "medium": 0, "high": 1, "critical": 0}
    assert week["by_node"] == [{"uuid": a["uuid"], "name": "a", "incidents": 1}]
    assert week["peak_pps"] == 50_000 and week["total_attack_sec"] == 100
    assert week["mean_time_to_mitigate_sec"] == pytest.approx(2.0, abs=0.01)

    month = await summary("30d")
    assert month["incidents_total"] == 2 and month["peak_pps"] == 900_000
    assert month["by_family"] == {"syn_flood": 1, "udp_flood": 1}
    assert month["total_attack_sec"] == 300
    assert month["mean_time_to_mitigate_sec"] == pytest.approx(3.0, abs=0.01)

    quarter = await summary("90d")
    assert quarter["incidents_total"] == 3 and quarter["by_family"] == {
        "udp_flood": 2,
        "syn_flood": 1,
    }
    assert quarter["by_node"] == [
        {"uuid": a["uuid"], "name": "a", "incidents": 2},
        {"uuid": b["uuid"], "name": "b", "incidents": 1},
    ]
    assert quarter["mean_time_to_mitigate_sec"] == pytest.approx(3.0, abs=0.01)  # b's 60d: none

    year = await summary("365d")
    assert year["incidents_total"] == 4 and year["total_attack_sec"] == 380
    assert year["by_severity"] == {"low": 1, "medium": 1, "high": 1, "critical": 1}
    assert year["peak_pps"] == 900_000

    default = (await api.get("/api/v1/analytics/summary", ws)).json()
    assert default["range"] == "30d" and default["incidents_total"] == 2


async def test_summary_empty_and_invalid_range(api: Api, ws: Workspace) -> None:
    empty = (await api.get("/api/v1/analytics/summary", ws, range="7d")).json()
    assert empty["incidents_total"] == 0 and empty["by_family"] == {}
    assert empty["peak_pps"] == 0 and empty["mean_time_to_mitigate_sec"] is None
    for bad in ("1d", "30", "week"):
        r = await api.get("/api/v1/analytics/summary", ws, range=bad)
        assert assert_error(r, 400, "range")["field"] == "range"
    assert_error(await api.client.get("/api/v1/analytics/summary"), 401)


async def test_active_incident_counts_up_to_now(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "a")
    await api.incident(ws, node["uuid"], started_at=time.time() - 60)
    body = (await api.get("/api/v1/analytics/summary", ws, range="7d")).json()
    assert 60 <= body["total_attack_sec"] <= 70


async def test_traffic_figures_from_the_one_minute_rollups(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    a = await api.node(ws, "a")
    b = await api.node(ws, "b")
    theirs = await api.node(other, "x")
    ids = {
        uuid: row[0]
        for uuid in (a["uuid"], b["uuid"], theirs["uuid"])
        for row in await api.app.state.db.execute_fetchall(
            "SELECT id FROM nodes WHERE uuid = ?", (uuid,)
        )
    }
    now_min = int(time.time()) // 60 * 60

    async def minute(node: dict[str, Any], ago_s: float, pps: float, peak: float,
                     attack: int = 0) -> None:  # fmt: skip
        await api.sql(
            """INSERT INTO node_metrics_minute (node_id, minute, samples, pps_avg, pps_max,
                   bps_avg, bps_max, dropped_pps_avg, tcp_pps_avg, udp_pps_avg, icmp_pps_avg,
                   other_pps_avg, fragment_pps_avg, syn_pps_avg, attack_samples)
               VALUES (?, ?, 60, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0, ?)""",
            ids[node["uuid"]],
            now_min - int(ago_s),
            pps,
            peak,
            pps * 800,
            peak * 800,
            attack,
        )

    # Two minutes in which both nodes report, one in which only a does (b: no traffic).
    await minute(a, 120, 100.0, 150.0)
    await minute(b, 120, 300.0, 400.0, attack=12)
    await minute(a, 60, 200.0, 250.0)
    await minute(b, 60, 100.0, 100.0)
    await minute(a, 3 * 60, 600.0, 700.0, attack=60)
    await minute(a, 10 * DAY, 1e6, 5e6, attack=60)  # outside 7d, inside 30d
    await minute(theirs, 60, 9e9, 9e9, attack=60)  # another workspace

    week = (await api.get("/api/v1/analytics/summary", ws, range="7d")).json()
    assert week["traffic"] == {
        "avg_pps": pytest.approx((100 + 300 + 200 + 100 + 600) / 3),
        "peak_pps": 700.0,
        "avg_bps": pytest.approx((100 + 300 + 200 + 100 + 600) * 800 / 3),
        "peak_bps": 700.0 * 800,
        "attack_minutes": 2,
        "nodes_reporting": 2,
    }
    month = (await api.get("/api/v1/analytics/summary", ws, range="30d")).json()["traffic"]
    assert (month["peak_pps"], month["attack_minutes"]) == (5e6, 3)
    assert month["avg_pps"] == pytest.approx((1300 + 1e6) / 4)
    theirs_week = (await api.get("/api/v1/analytics/summary", other, range="7d")).json()
    assert (theirs_week["traffic"]["nodes_reporting"], theirs_week["traffic"]["peak_pps"]) == (
        1, 9e9
    )  # fmt: skip
    # No roll-ups: no averages or peaks to show (null, not a made-up zero).
    await api.sql("DELETE FROM node_metrics_minute")
    none = (await api.get("/api/v1/analytics/summary", ws, range="7d")).json()["traffic"]
    assert none == {"avg_pps": None, "peak_pps": None, "avg_bps": None, "peak_bps": None,
                    "attack_minutes": 0, "nodes_reporting": 0}  # fmt: skip

"""Incident open/update/resolve from the agent: idempotent replays, seq ordering,
ownership, geo origin, summary, node status and the published incident events."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.api.agentapi.conftest import Agent, deploy, eventually
from tests.api.conftest import Api, Workspace, assert_error


def figures(seq: int, peak: float, **kw: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "family": "memcached_amplification",
        "severity": "high",
        "peak_pps": peak,
        "peak_bps": peak * 8000,
        "protocols": {"udp": 99.0, "tcp": 1.0},
        "top_sources": [
            {"ip": "8.8.8.8", "pps": peak * 0.6, "bps": 1.0},
            {"ip": "1.1.1.1", "pps": peak * 0.4, "bps": 1.0},
        ],
        "rules": [{"kind": "signature", "match": "signature proto=17 sport=11211",
                   "ttl_sec": 300, "dropped_packets": 1234}],
        **kw,
    }  # fmt: skip


async def open_incident(api: Api, agent: Agent, inc: str, seq: int = 1, peak: float = 1e5) -> Any:
    return await api.client.post(
        "/api/v1/agent/incidents",
        json={"uuid": inc, "started_at": time.time() - 5, "figures": figures(seq, peak)},
        headers=agent.headers,
    )


async def get(api: Api, ws: Workspace, inc: str) -> dict[str, Any]:
    r = await api.client.get(f"/api/v1/incidents/{inc}", headers=ws.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["incident"]
    return body


async def test_open_is_idempotent_on_the_agents_uuid(api: Api, ws: Workspace, agent: Agent) -> None:
    inc = str(uuid.uuid4())
    r = await open_incident(api, agent, inc)
    assert r.status_code == 201, r.text
    assert r.json() == {"ok": True, "uuid": inc, "status": "active", "created": True}
    r = await open_incident(api, agent, inc)  # replay
    assert r.status_code == 200, r.text
    assert r.json()["created"] is False
    listed = (await api.client.get("/api/v1/incidents", headers=ws.headers)).json()
    assert listed["total"] == 1
    assert [e.kind for e in api.events] == ["opened"]
    got = await get(api, ws, inc)
    assert got["family"] == "memcached_amplification"
    assert got["peak_pps"] == 1e5
    assert [s["ip"] for s in got["top_sources"]] == ["8.8.8.8", "1.1.1.1"]
    # geo origin from the offline database, summary built by rules from the figures
    assert got["top_sources"][0]["country"] == "US"
    assert got["geo_origin"][0]["country"] in {"US", "AU"}
    assert "memcached amplification" in got["summary"]
    assert "1 mitigation rules, 1234 packets dropped" in got["summary"]
    assert got["mitigation_rules"][0]["match"] == "signature proto=17 sport=11211"


async def test_updates_apply_in_seq_order_only(api: Api, ws: Workspace, agent: Agent) -> None:
    inc = str(uuid.uuid4())
    await open_incident(api, agent, inc)
    path = f"/api/v1/agent/incidents/{inc}"
    r = await api.client.post(
        path, json={"figures": figures(2, 3e5, severity="critical")}, headers=agent.headers
    )
    assert r.status_code == 200, r.text
    assert (await get(api, ws, inc))["peak_pps"] == 3e5
    # a replay of seq 2 with other numbers, and an older seq: both ignored
    await api.client.post(path, json={"figures": figures(2, 9e5)}, headers=agent.headers)
    await api.client.post(
        path, json={"figures": figures(1, 8e5, family="udp_flood")}, headers=agent.headers
    )
    got = await get(api, ws, inc)
    assert (got["peak_pps"], got["family"], got["severity"]) == (
        3e5, "memcached_amplification", "critical",
    )  # fmt: skip
    assert [e.kind for e in api.events] == ["opened", "escalated"]


async def test_a_provisional_severity_settled_higher_is_no_escalation(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    """The agent reports an attack at its confirming window, before a full window: that
    severity is provisional; the report that settles it higher refines the opening (one
    notification), and a later rise is an escalation again."""
    inc = str(uuid.uuid4())
    opened = await api.client.post(
        "/api/v1/agent/incidents",
        json={"uuid": inc, "started_at": time.time() - 1,
              "figures": figures(1, 1e5, severity="low", severity_provisional=True)},
        headers=agent.headers,
    )  # fmt: skip
    assert opened.status_code == 201, opened.text
    path = f"/api/v1/agent/incidents/{inc}"
    settled = await api.client.post(
        path, json={"figures": figures(2, 1e5, severity="high")}, headers=agent.headers
    )
    assert settled.status_code == 200, settled.text
    assert (await get(api, ws, inc))["severity"] == "high"
    assert [e.kind for e in api.events] == ["opened", "updated"]
    risen = await api.client.post(
        path, json={"figures": figures(3, 9e5, severity="critical")}, headers=agent.headers
    )
    assert risen.status_code == 200, risen.text
    assert [e.kind for e in api.events] == ["opened", "updated", "escalated"]


async def test_resolve_is_final_and_idempotent(api: Api, ws: Workspace, agent: Agent) -> None:
    inc = str(uuid.uuid4())
    await open_incident(api, agent, inc)
    ended = time.time()
    body = {"ended_at": ended, "figures": figures(3, 4e5)}
    path = f"/api/v1/agent/incidents/{inc}/resolve"
    r = await api.client.post(path, json=body, headers=agent.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved"
    r = await api.client.post(path, json=body, headers=agent.headers)  # replay
    assert r.json()["status"] == "resolved"
    r = await open_incident(api, agent, inc)  # even a very late replay of the open
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    got = await get(api, ws, inc)
    assert got["status"] == "resolved"
    assert got["peak_pps"] == 4e5  # the final figures were applied before resolving
    assert got["ended_at"] is not None
    assert [e.kind for e in api.events] == ["opened", "updated", "resolved"]


async def test_update_after_an_operator_closed_it_is_answered_not_applied(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    inc = str(uuid.uuid4())
    await open_incident(api, agent, inc)
    r = await api.client.patch(
        f"/api/v1/incidents/{inc}", json={"status": "false_positive"}, headers=ws.headers
    )
    assert r.status_code == 200, r.text
    r = await api.client.post(
        f"/api/v1/agent/incidents/{inc}", json={"figures": figures(2, 9e5)}, headers=agent.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "false_positive"
    assert (await get(api, ws, inc))["peak_pps"] == 1e5


async def test_another_node_cannot_touch_the_incident(
    api: Api, ws: Workspace, other: Workspace, agent: Agent
) -> None:
    inc = str(uuid.uuid4())
    await open_incident(api, agent, inc)
    sibling = await deploy(api, ws, name="edge-2", ip="198.51.100.11")
    foreign = await deploy(api, other, name="edge-x", ip="198.51.100.12")
    for intruder in (sibling, foreign):
        r = await api.client.post(
            f"/api/v1/agent/incidents/{inc}", json={"figures": figures(5, 1.0)},
            headers=intruder.headers,
        )  # fmt: skip
        assert_error(r, 404)
        r = await api.client.post(
            f"/api/v1/agent/incidents/{inc}/resolve",
            json={"ended_at": time.time(), "figures": figures(5, 1.0)},
            headers=intruder.headers,
        )
        assert_error(r, 404)
    # the same uuid opened by another node is not silently merged into this incident
    r = await open_incident(api, sibling, inc)
    assert_error(r, 404)
    assert (await get(api, ws, inc))["status"] == "active"


async def test_bad_incident_reports(api: Api, agent: Agent) -> None:
    r = await open_incident(api, agent, "not-a-uuid")
    assert_error(r, 400, "uuid")
    r = await api.client.post(
        "/api/v1/agent/incidents",
        json={"uuid": str(uuid.uuid4()), "started_at": 1.0,
              "figures": figures(1, 1.0, family="space_weather")},
        headers=agent.headers,
    )  # fmt: skip
    assert_error(r, 400, "family")
    r = await api.client.post(
        f"/api/v1/agent/incidents/{uuid.uuid4()}",
        json={"figures": figures(2, 1.0)},
        headers=agent.headers,
    )
    assert_error(r, 404)


async def test_node_status_attack_elevated_online(api: Api, ws: Workspace, agent: Agent) -> None:
    async def status() -> str:
        r = await api.client.get(f"/api/v1/nodes/{agent.uuid}", headers=ws.headers)
        return str(r.json()["node"]["status"])

    second = int(time.time())

    async def metrics(pps: float) -> None:
        nonlocal second
        second += 1  # one point per second, as the agent sends them
        point = {"ts": second, "pps": pps, "bps": 1.0, "baseline_p95_pps": 1000.0,
                 "baseline_avg_pps": 800.0}  # fmt: skip
        r = await api.client.post(
            "/api/v1/agent/metrics", json={"points": [point]}, headers=agent.headers
        )
        assert r.status_code == 200

    beat = {"version": "1", "xdp_mode": "generic"}
    await api.client.post("/api/v1/agent/heartbeat", json=beat, headers=agent.headers)
    await metrics(1400.0)  # below 1.5 x p95

    async def is_(expected: str) -> bool:
        return await status() == expected

    assert await eventually(lambda: is_("online"))
    await metrics(1600.0)  # above 1.5 x p95, no incident
    assert await eventually(lambda: is_("elevated"))
    inc = str(uuid.uuid4())
    await open_incident(api, agent, inc)
    assert await status() == "attack"
    r = await api.client.get("/api/v1/status", headers=ws.headers)
    assert r.json()["under_attack"] == 1
    await api.client.post(
        f"/api/v1/agent/incidents/{inc}/resolve",
        json={"ended_at": time.time(), "figures": figures(2, 1.0)},
        headers=agent.headers,
    )
    await metrics(900.0)
    assert await eventually(lambda: is_("online"))


async def test_top_sources_are_kept_from_the_heaviest_report(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    inc = str(uuid.uuid4())
    await open_incident(api, agent, inc)  # 8.8.8.8 and 1.1.1.1, 1e5 pps together
    path = f"/api/v1/agent/incidents/{inc}"
    leftovers = [{"ip": "192.0.2.9", "pps": 5.0, "bps": 1.0}]
    await api.client.post(
        path, json={"figures": figures(2, 1e5, top_sources=leftovers)}, headers=agent.headers
    )
    assert [s["ip"] for s in (await get(api, ws, inc))["top_sources"]] == ["8.8.8.8", "1.1.1.1"]
    heavier = [{"ip": "9.9.9.9", "pps": 2e5, "bps": 1.0}]
    await api.client.post(
        path, json={"figures": figures(3, 2e5, top_sources=heavier)}, headers=agent.headers
    )
    assert [s["ip"] for s in (await get(api, ws, inc))["top_sources"]] == ["9.9.9.9"]


async def test_source_count_from_the_agent_reaches_the_incident(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    inc = str(uuid.uuid4())
    r = await api.client.post(
        "/api/v1/agent/incidents",
        json={"uuid": inc, "started_at": time.time() - 5,
              "figures": figures(1, 1e5, source_count=3172)},
        headers=agent.headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert (await get(api, ws, inc))["source_count"] == 3172
    path = f"/api/v1/agent/incidents/{inc}"
    r = await api.client.post(
        path, json={"figures": figures(2, 1e5, source_count=9001)}, headers=agent.headers
    )
    assert r.status_code == 200, r.text
    assert (await get(api, ws, inc))["source_count"] == 9001
    assert [e.incident.source_count for e in api.events] == [3172, 9001]
    assert_error(
        await api.client.post(
            path, json={"figures": figures(3, 1e5, source_count=-1)}, headers=agent.headers
        ),
        400,
        "source_count",
    )
    # An agent that does not send it (older version): the listed sources are the count.
    old = str(uuid.uuid4())
    await open_incident(api, agent, old)
    assert (await get(api, ws, old))["source_count"] == 2

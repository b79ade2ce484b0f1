"""Incident figures added to the contract, through the real Agent API and REST API:
the short-window peak (`peak_burst_pps`/`peak_burst_bps`), why the agent ended an
incident (`end_reason`), and the packets a rule spared (`spared_packets`)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.api.agentapi.conftest import Agent
from tests.api.agentapi.test_incidents import figures, get
from tests.api.conftest import Api, Workspace, assert_error


async def _open(api: Api, agent: Agent, **kw: Any) -> str:
    inc = str(uuid.uuid4())
    r = await api.client.post(
        "/api/v1/agent/incidents",
        json={"uuid": inc, "started_at": time.time() - 5, "figures": figures(1, 1e5, **kw)},
        headers=agent.headers,
    )
    assert r.status_code == 201, r.text
    return inc


async def _update(api: Api, agent: Agent, inc: str, seq: int, **kw: Any) -> None:
    r = await api.client.post(
        f"/api/v1/agent/incidents/{inc}",
        json={"figures": figures(seq, 1e5, **kw)},
        headers=agent.headers,
    )
    assert r.status_code == 200, r.text


async def _resolve(api: Api, agent: Agent, inc: str, seq: int, **body: Any) -> Any:
    return await api.client.post(
        f"/api/v1/agent/incidents/{inc}/resolve",
        json={"ended_at": time.time(), "figures": figures(seq, 1e5), **body},
        headers=agent.headers,
    )


async def test_burst_peaks_are_stored_as_the_highest_seen(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    inc = await _open(api, agent, peak_burst_pps=4.5e5, peak_burst_bps=3.6e9)
    got = await get(api, ws, inc)
    assert (got["peak_burst_pps"], got["peak_burst_bps"]) == (4.5e5, 3.6e9)
    # the one-second peak is its own figure
    assert got["peak_pps"] == 1e5
    await _update(api, agent, inc, 2, peak_burst_pps=2e5, peak_burst_bps=1e9)
    got = await get(api, ws, inc)
    assert (got["peak_burst_pps"], got["peak_burst_bps"]) == (4.5e5, 3.6e9)
    await _update(api, agent, inc, 3, peak_burst_pps=6e5, peak_burst_bps=4e9)
    got = await get(api, ws, inc)
    assert (got["peak_burst_pps"], got["peak_burst_bps"]) == (6e5, 4e9)
    # the published event carries the same incident
    assert (api.events[-1].incident.peak_burst_pps, api.events[-1].incident.peak_burst_bps) == (
        6e5,
        4e9,
    )


async def test_burst_peaks_default_to_zero_when_the_agent_sends_none(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    inc = await _open(api, agent)
    got = await get(api, ws, inc)
    assert (got["peak_burst_pps"], got["peak_burst_bps"]) == (0.0, 0.0)


async def test_end_reason_is_the_agents_reason(api: Api, ws: Workspace, agent: Agent) -> None:
    stopped = await _open(api, agent)
    assert (await get(api, ws, stopped))["end_reason"] is None  # active
    r = await _resolve(api, agent, stopped, 2, reason="agent_stopped")
    assert r.status_code == 200, r.text
    got = await get(api, ws, stopped)
    assert (got["status"], got["end_reason"]) == ("resolved", "agent_stopped")
    # a replayed resolve with another reason changes nothing
    r = await _resolve(api, agent, stopped, 3, reason="agent_restarted")
    assert r.status_code == 200, r.text
    assert (await get(api, ws, stopped))["end_reason"] == "agent_stopped"

    cooled = await _open(api, agent)
    r = await _resolve(api, agent, cooled, 2)  # no reason: the contract's default
    assert r.status_code == 200, r.text
    assert (await get(api, ws, cooled))["end_reason"] == "cooled_down"

    restarted = await _open(api, agent)
    r = await _resolve(api, agent, restarted, 2, reason="agent_restarted")
    assert r.status_code == 200, r.text
    assert (await get(api, ws, restarted))["end_reason"] == "agent_restarted"


async def test_end_reason_is_null_when_a_person_resolves(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    inc = await _open(api, agent)
    r = await api.client.patch(
        f"/api/v1/incidents/{inc}", json={"status": "resolved"}, headers=ws.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["incident"]["status"], r.json()["incident"]["end_reason"]) == (
        "resolved",
        None,
    )
    # the agent's late resolve does not rewrite a closed incident
    r = await _resolve(api, agent, inc, 2, reason="cooled_down")
    assert r.status_code == 200, r.text
    assert (await get(api, ws, inc))["end_reason"] is None


async def test_an_unknown_end_reason_is_refused_naming_the_field(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    inc = await _open(api, agent)
    body = assert_error(await _resolve(api, agent, inc, 2, reason="tired"), 400, "reason")
    assert body["field"] == "reason"
    got = await get(api, ws, inc)
    assert (got["status"], got["end_reason"]) == ("active", None)


async def test_rules_show_their_spared_packets(api: Api, ws: Workspace, agent: Agent) -> None:
    rule = {
        "kind": "signature",
        "match": "signature proto=17 dport=53",
        "dropped_packets": 9000,
        "spared_packets": 17,
    }
    inc = await _open(api, agent, rules=[rule])
    got = await get(api, ws, inc)
    assert got["mitigation_rules"][0]["spared_packets"] == 17
    assert got["mitigation_rules"][0]["dropped_packets"] == 9000
    # a rule that spared nothing (the agent leaves the field out) shows 0
    await _update(api, agent, inc, 2)
    got = await get(api, ws, inc)
    assert [r["spared_packets"] for r in got["mitigation_rules"]] == [0]

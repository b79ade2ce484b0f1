"""Heartbeat (last_seen, status), GET config, overrides, operator rule commands and acks."""

from __future__ import annotations

import time
from typing import Any

from tests.api.agentapi.conftest import Agent, deploy
from tests.api.conftest import Api, Workspace, assert_error

BEAT = {
    "version": "0.1.0",
    "xdp_mode": "generic",
    "interface": "veth-v",
    "baseline_state": "ready",
    "attack_state": "normal",
    "spool_size": 3,
    "uptime_s": 12.5,
    "pps": 100.0,
    "rules_active": 0,
    "mitigation_mode": "on",
}


async def node(api: Api, ws: Workspace, agent: Agent) -> dict[str, Any]:
    r = await api.client.get(f"/api/v1/nodes/{agent.uuid}", headers=ws.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["node"]
    return body


async def beat(api: Api, agent: Agent) -> dict[str, Any]:
    r = await api.client.post("/api/v1/agent/heartbeat", json=BEAT, headers=agent.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_heartbeat_brings_a_node_online_and_stores_its_state(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    assert (await node(api, ws, agent))["status"] == "offline"  # never seen
    r = await api.client.get(f"/api/v1/nodes/{agent.uuid}/agent", headers=ws.headers)
    assert r.json()["agent"]["version"] is None
    reply = await beat(api, agent)
    assert reply == {"ok": True, "status": "online", "config_version": 1, "pending_commands": 0}
    n = await node(api, ws, agent)
    assert n["status"] == "online"
    assert n["last_seen"] is not None
    r = await api.client.get(f"/api/v1/nodes/{agent.uuid}/agent", headers=ws.headers)
    assert r.status_code == 200, r.text
    state = r.json()["agent"]
    assert (state["version"], state["xdp_mode"], state["spool_size"]) == ("0.1.0", "generic", 3)
    assert (state["baseline_state"], state["attack_state"]) == ("ready", "normal")
    assert state["last_heartbeat"] is not None


async def test_three_missed_heartbeats_make_a_node_offline(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    await beat(api, agent)
    # offline_after_sec=15 in this app: three missed 5 s heartbeats
    await api.sql("UPDATE nodes SET last_seen = ? WHERE uuid = ?", time.time() - 16, agent.uuid)
    assert (await node(api, ws, agent))["status"] == "offline"
    await beat(api, agent)
    assert (await node(api, ws, agent))["status"] == "online"


async def test_heartbeat_rejects_unknown_fields_naming_them(api: Api, agent: Agent) -> None:
    r = await api.client.post(
        "/api/v1/agent/heartbeat", json={**BEAT, "colour": "red"}, headers=agent.headers
    )
    assert_error(r, 400, "colour")
    r = await api.client.post(
        "/api/v1/agent/heartbeat", json={**BEAT, "xdp_mode": "turbo"}, headers=agent.headers
    )
    assert_error(r, 400, "xdp_mode")


async def test_config_defaults_then_overrides(api: Api, ws: Workspace, agent: Agent) -> None:
    r = await api.client.get("/api/v1/agent/config", headers=agent.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "ok": True,
        "config": {
            "config_version": 1,
            "thresholds": {},
            "mitigation_mode": None,
            "rule_ttl_s": None,
            "allowlist": None,
            "sampling": {},
            "commands": [],
        },
    }
    overrides = {
        "thresholds": {"multiplier": 4.0, "floors": {"pps": 20000.0}},
        "mitigation_mode": "dry_run",
        "allowlist": ["192.0.2.0/24"],
        "sampling": {"attack_samples_per_s": 500},
    }
    r = await api.client.put(
        f"/api/v1/nodes/{agent.uuid}/agent-config", json=overrides, headers=ws.headers
    )
    assert r.status_code == 200, r.text
    assert (await beat(api, agent))["config_version"] == 2
    cfg = (await api.client.get("/api/v1/agent/config", headers=agent.headers)).json()["config"]
    assert cfg["config_version"] == 2
    assert cfg["thresholds"] == {"multiplier": 4.0, "floors": {"pps": 20000.0}}
    assert cfg["mitigation_mode"] == "dry_run"
    assert cfg["allowlist"] == ["192.0.2.0/24"]
    assert cfg["sampling"] == {"attack_samples_per_s": 500}
    r = await api.client.get(f"/api/v1/nodes/{agent.uuid}/agent-config", headers=ws.headers)
    assert r.json()["config"]["mitigation_mode"] == "dry_run"


async def test_bad_overrides_are_refused_with_the_field(
    api: Api, ws: Workspace, agent: Agent
) -> None:
    path = f"/api/v1/nodes/{agent.uuid}/agent-config"
    r = await api.client.put(path, json={"allowlist": ["not-an-ip"]}, headers=ws.headers)
    assert_error(r, 400, "allowlist[0]")
    r = await api.client.put(path, json={"mitigation_mode": "maybe"}, headers=ws.headers)
    assert_error(r, 400, "mitigation_mode")
    r = await api.client.put(path, json={"thresholds": {"multiplier": -1}}, headers=ws.headers)
    assert_error(r, 400, "thresholds.multiplier")


async def test_operator_block_and_unblock_round_trip(api: Api, ws: Workspace, agent: Agent) -> None:
    rules = f"/api/v1/nodes/{agent.uuid}/rules"
    r = await api.client.post(
        rules, json={"target": "198.51.100.77", "ttl_s": 600}, headers=ws.headers
    )
    assert r.status_code == 201, r.text
    rule = r.json()["rule"]
    assert (rule["target"], rule["status"], rule["ttl_s"]) == ("198.51.100.77", "pending", 600)
    reply = await beat(api, agent)
    assert reply["pending_commands"] == 1
    assert reply["config_version"] == 2
    cmds = (await api.client.get("/api/v1/agent/config", headers=agent.headers)).json()["config"][
        "commands"
    ]
    assert cmds == [{"id": cmds[0]["id"], "action": "block", "target": "198.51.100.77",
                     "ttl_s": 600.0}]  # fmt: skip
    r = await api.client.post(
        "/api/v1/agent/commands/ack",
        json={"acks": [{"id": cmds[0]["id"], "ok": True}]},
        headers=agent.headers,
    )
    assert r.json() == {"ok": True, "accepted": 1}
    listed = (await api.client.get(rules, headers=ws.headers)).json()["rules"]
    assert listed[0]["status"] == "active"
    assert listed[0]["applied_at"] is not None and listed[0]["expires_at"] is not None
    # unblock
    r = await api.client.delete(f"{rules}/{rule['id']}", headers=ws.headers)
    assert r.status_code == 200, r.text
    assert r.json()["rule"]["status"] == "removing"
    cmds = (await api.client.get("/api/v1/agent/config", headers=agent.headers)).json()["config"][
        "commands"
    ]
    assert [(c["action"], c["target"]) for c in cmds] == [("unblock", "198.51.100.77")]
    await api.client.post(
        "/api/v1/agent/commands/ack",
        json={"acks": [{"id": cmds[0]["id"], "ok": True}]},
        headers=agent.headers,
    )
    listed = (await api.client.get(rules, headers=ws.headers)).json()["rules"]
    assert listed[0]["status"] == "removed"
    assert (await beat(api, agent))["pending_commands"] == 0
    # a second DELETE changes nothing
    r = await api.client.delete(f"{rules}/{rule['id']}", headers=ws.headers)
    assert r.json()["rule"]["status"] == "removed"


async def test_failed_block_shows_the_agents_reason(api: Api, ws: Workspace, agent: Agent) -> None:
    rules = f"/api/v1/nodes/{agent.uuid}/rules"
    await api.client.post(rules, json={"target": "203.0.113.0/24"}, headers=ws.headers)
    cmd = (await api.client.get("/api/v1/agent/config", headers=agent.headers)).json()["config"][
        "commands"
    ][0]
    assert cmd["target"] == "203.0.113.0/24"
    await api.client.post(
        "/api/v1/agent/commands/ack",
        json={"acks": [{"id": cmd["id"], "ok": False, "error": "covers protected network"}]},
        headers=agent.headers,
    )
    listed = (await api.client.get(rules, headers=ws.headers)).json()["rules"]
    assert (listed[0]["status"], listed[0]["error"]) == ("failed", "covers protected network")


async def test_acks_only_touch_the_callers_commands(api: Api, ws: Workspace, agent: Agent) -> None:
    other = await deploy(api, ws, name="edge-2", ip="198.51.100.11")
    await api.client.post(
        f"/api/v1/nodes/{agent.uuid}/rules", json={"target": "192.0.2.1"}, headers=ws.headers
    )
    cmd = (await api.client.get("/api/v1/agent/config", headers=agent.headers)).json()["config"][
        "commands"
    ][0]
    r = await api.client.post(
        "/api/v1/agent/commands/ack",
        json={"acks": [{"id": cmd["id"], "ok": True}, {"id": 999, "ok": True}]},
        headers=other.headers,
    )
    assert r.json() == {"ok": True, "accepted": 0}
    assert (await beat(api, agent))["pending_commands"] == 1


async def test_rule_input_errors(api: Api, ws: Workspace, other: Workspace, agent: Agent) -> None:
    rules = f"/api/v1/nodes/{agent.uuid}/rules"
    assert_error(await api.client.post(rules, json={"target": "nope"}, headers=ws.headers), 400,
                 "target")  # fmt: skip
    assert_error(await api.client.post(rules, json={"target": "0.0.0.0/0"}, headers=ws.headers),
                 400, "target")  # fmt: skip
    r = await api.client.post(rules, json={"target": "192.0.2.1", "ttl_s": 0}, headers=ws.headers)
    assert_error(r, 400, "ttl_s")
    # another workspace cannot see or change this node's rules
    r = await api.client.post(rules, json={"target": "192.0.2.1"}, headers=other.headers)
    assert_error(r, 404)
    assert_error(await api.client.get(rules, headers=other.headers), 404)
    assert_error(await api.client.delete(f"{rules}/1", headers=ws.headers), 404)
    r = await api.client.post(rules, json={"target": "192.0.2.1"})
    assert_error(r, 401)

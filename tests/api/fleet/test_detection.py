"""Fleet detection end to end through the real Agent API: a DNS amplification spread
over the workspace's nodes (each under a node's own threshold, the sum over the group's)
opens ONE fleet incident with the right family and orders for every node; a benign
doubling after the baseline is ready opens nothing; the incident resolves after the
cool-down of complete quiet seconds; a node deleted during it shows 'removed'."""

from __future__ import annotations

from typing import Any

import msgspec

from ftcontract.agent_api import FleetRuleReport, MetricPoint, RuleFigure
from tests.api.conftest import Workspace
from tests.api.fleet.conftest import Api, Fleet, dns_amplification, quiet


async def incident_detail(fleet: Fleet, uuid: str) -> dict[str, Any]:
    r = await fleet.api.get(f"/api/v1/incidents/{uuid}", fleet.ws)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["incident"]
    return body


async def test_spread_dns_amplification_opens_one_fleet_incident(fleet: Fleet) -> None:
    await fleet.seconds(5, quiet)
    assert await fleet.fleet_incidents() == []
    await fleet.seconds(3, dns_amplification)

    (incident,) = await fleet.fleet_incidents()
    assert incident["scope"] == "fleet"
    assert incident["group"] == "workspace"
    assert incident["family"] == "dns_amplification"
    assert incident["status"] == "active"
    assert incident["peak_pps"] == 8 * 1400.0
    node_incidents = await fleet.api.get("/api/v1/incidents", fleet.ws, scope="node")
    assert node_incidents.json()["incidents"] == []
    opened = [e for e in fleet.api.events if e.kind == "opened"]
    assert len(opened) == 1

    # every node is ordered to drop the signature, and its next metrics reply says so
    for agent in fleet.nodes:
        body = await fleet.orders(agent)
        (order,) = body["orders"]
        assert order["incident_uuid"] == incident["uuid"]
        assert order["family"] == "dns_amplification"
        (vector,) = order["vectors"]
        # before the baseline is ready raw rates are classified: UDP is 1,000 of 1,400 pps
        assert vector == {
            "family": "dns_amplification",
            "group": "udp",
            "share": 0.714,
            "amp_port": 53,
        }
        assert order["ttl_s"] == 60.0
        reply = await fleet.post(agent, dns_amplification(fleet.second))
        assert reply["fleet_version"] == body["version"]

    # the nodes, their shares and peaks
    await fleet.engine.tick()
    detail = await incident_detail(fleet, incident["uuid"])
    assert {n["node_name"] for n in detail["nodes"]} == {a.name for a in fleet.nodes}
    assert all(n["state"] == "reporting" for n in detail["nodes"])
    assert abs(sum(n["share"] for n in detail["nodes"]) - 1.0) < 1e-6
    assert all(n["peak_pps"] == 1400.0 for n in detail["nodes"])


async def test_benign_doubling_after_the_baseline_opens_nothing(fleet: Fleet) -> None:
    ws = fleet.ws
    # a floor the doubled sum (8 x 1,000 pps) is above: only the baseline keeps it quiet
    r = await fleet.api.client.put(
        "/api/v1/fleet/groups",
        json={"group": "workspace", "thresholds": {"floors": {"pps": 6000}}},
        headers=ws.headers,
    )
    assert r.status_code == 200, r.text
    await fleet.seconds(25, quiet)
    r = await fleet.api.get("/api/v1/fleet/groups", ws)
    (group,) = r.json()["groups"]
    assert group["baseline"]["state"] == "ready"
    assert group["baseline"]["p99_pps"] == 4000.0

    await fleet.seconds(10, lambda s: quiet(s, scale=2.0))
    assert await fleet.fleet_incidents() == []

    # the doubled level was learned (quiet, complete seconds): p99 8,000 pps
    (group,) = (await fleet.api.get("/api/v1/fleet/groups", ws)).json()["groups"]
    assert group["baseline"]["p99_pps"] == 8000.0
    # and the same group does open on eight times its usual traffic (> 3 x 8,000 pps)
    await fleet.seconds(3, lambda s: quiet(s, scale=8.0))
    (incident,) = await fleet.fleet_incidents()
    assert incident["family"] == "ack_flood"


async def test_resolves_after_cool_down_and_orders_end(fleet: Fleet) -> None:
    await fleet.seconds(2, quiet)
    await fleet.seconds(3, dns_amplification)
    (incident,) = await fleet.fleet_incidents()
    # seconds with a node missing say nothing about quiet: no cool-down
    await fleet.seconds(5, quiet, nodes=fleet.nodes[1:])
    await fleet.after_grace()  # the seconds the node missed are evaluated without it
    (still,) = await fleet.fleet_incidents()
    assert still["status"] == "active"
    detail = await incident_detail(fleet, incident["uuid"])
    missing = {n["node_name"] for n in detail["nodes"] if n["state"] == "missing"}
    assert missing == {fleet.nodes[0].name}

    await fleet.seconds(3, quiet)
    (ended,) = await fleet.fleet_incidents()
    assert ended["status"] == "resolved"
    assert [e.kind for e in fleet.api.events].count("resolved") == 1
    for agent in fleet.nodes:
        assert (await fleet.orders(agent))["orders"] == []


async def test_node_deleted_during_the_incident(fleet: Fleet, api: Api, ws: Workspace) -> None:
    await fleet.seconds(2, quiet)
    await fleet.seconds(3, dns_amplification)
    (incident,) = await fleet.fleet_incidents()
    gone = fleet.nodes.pop()
    r = await api.client.delete(f"/api/v1/nodes/{gone.uuid}", headers=ws.headers)
    assert r.status_code in (200, 204), r.text
    await fleet.seconds(2, dns_amplification)
    await fleet.engine.tick()
    detail = await incident_detail(fleet, incident["uuid"])
    states = {n["node_name"]: n["state"] for n in detail["nodes"]}
    assert states[gone.name] == "removed"
    assert all(states[a.name] == "reporting" for a in fleet.nodes)
    # the remaining nodes keep their orders; the incident goes on and ends without it
    assert (await fleet.orders(fleet.nodes[0]))["orders"]
    await fleet.seconds(3, quiet)
    (ended,) = await fleet.fleet_incidents()
    assert ended["status"] == "resolved"


async def test_operator_false_positive_ends_the_orders(fleet: Fleet) -> None:
    await fleet.seconds(2, quiet)
    await fleet.seconds(3, dns_amplification)
    (incident,) = await fleet.fleet_incidents()
    agent = fleet.nodes[0]
    before = await fleet.orders(agent)
    assert before["orders"]
    r = await fleet.api.client.patch(
        f"/api/v1/incidents/{incident['uuid']}",
        json={"status": "false_positive"},
        headers=fleet.ws.headers,
    )
    assert r.status_code == 200, r.text
    after = await fleet.orders(agent)
    assert after["orders"] == [] and after["version"] != before["version"]
    # the attack goes on: the person's verdict holds until the group has cooled down
    await fleet.seconds(4, dns_amplification)
    assert [i["uuid"] for i in await fleet.fleet_incidents()] == [incident["uuid"]]
    assert (await fleet.orders(agent))["orders"] == []
    await fleet.seconds(3, quiet)  # cooled down
    await fleet.seconds(2, dns_amplification)  # a new attack is a new incident
    assert len(await fleet.fleet_incidents()) == 2


async def test_nodes_report_their_fleet_rules(fleet: Fleet) -> None:
    await fleet.seconds(2, quiet)
    await fleet.seconds(3, dns_amplification)
    (incident,) = await fleet.fleet_incidents()
    uuid = incident["uuid"]
    rule = {"kind": "signature", "match": "signature proto=17 sport=53", "proto": 17,
            "src_port": 53, "dropped_packets": 4000, "spared_packets": 12}  # fmt: skip
    since = float(fleet.second)
    reporting, silent = fleet.nodes[:5], fleet.nodes[5:]  # agents that know fleet rules, or not

    def with_rules(second: int) -> MetricPoint:
        p = dns_amplification(second)
        report = FleetRuleReport(
            incident_uuid=uuid,
            rules=[msgspec.convert(rule, RuleFigure)],
            in_force_since=since,
        )
        return msgspec.structs.replace(p, fleet_rules=[report])

    await fleet.seconds(1, with_rules, nodes=reporting)
    for agent in silent:  # the same second, within its grace
        await fleet.post(agent, dns_amplification(fleet.second - 1))
    await fleet.tick()
    fleet.clock.now += 1.1  # the per-node figures are written at most once a second
    await fleet.tick()
    detail = await incident_detail(fleet, uuid)
    by_name = {n["node_name"]: n for n in detail["nodes"]}
    for agent in reporting:
        node = by_name[agent.name]
        assert node["dropped_packets"] == 4000 and node["spared_packets"] == 12
        assert node["rules"] and node["in_force_since"] is not None
    for agent in silent:
        assert by_name[agent.name]["rules"] == []
        assert by_name[agent.name]["dropped_packets"] == 0


async def test_one_node_in_its_own_incident_is_not_a_fleet_incident(fleet: Fleet) -> None:
    """A node whose own agent detected its attack (points with `attack`) answers it
    itself: its traffic is not summed, so the group opens nothing."""
    hit = fleet.nodes[0]

    def own_attack(second: int) -> MetricPoint:
        return msgspec.structs.replace(dns_amplification(second, 50_000.0), attack=True)

    for _ in range(5):
        await fleet.post(hit, own_attack(fleet.second))
        await fleet.seconds(1, quiet, nodes=fleet.nodes[1:])
    assert await fleet.fleet_incidents() == []

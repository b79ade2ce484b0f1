"""Fleet orders over the long-poll, and a restart during a fleet incident.

- GET /api/v1/agent/fleet?after=V&wait=S held open wakes when the incident opens and
  answers the orders; `wait` out of range is a 400 naming it; an operator block command
  wakes it too (pending_commands).
- A new app on the same store continues the incident: the orders are listed again (the
  agents' TTL renewal goes on), the baseline is back, and the cool-down resolves it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from control.fleet.lifespan import fleet_of
from tests.api.conftest import assert_error
from tests.api.fleet.conftest import (
    SETTINGS,
    Fleet,
    SimClock,
    dns_amplification,
    make_fleet,
    quiet,
    running,
)


async def test_long_poll_wakes_when_the_incident_opens(fleet: Fleet) -> None:
    agent = fleet.nodes[3]
    await fleet.seconds(2, quiet)
    first = await fleet.orders(agent)
    assert first["orders"] == []
    # nothing new: the poll is held (here briefly) and answers the same version
    same = await fleet.orders(agent, after=first["version"], wait=0.05)
    assert same["version"] == first["version"] and same["orders"] == []

    poll = asyncio.create_task(fleet.orders(agent, after=first["version"], wait=30))
    await fleet.seconds(1, dns_amplification)
    await asyncio.sleep(0.05)
    assert not poll.done()  # not confirmed yet: still held
    await fleet.seconds(1, dns_amplification)  # confirmed: the incident opens
    woken = await asyncio.wait_for(poll, 10)
    (incident,) = await fleet.fleet_incidents()
    assert woken["version"] != first["version"]
    assert [o["incident_uuid"] for o in woken["orders"]] == [incident["uuid"]]


async def test_wait_out_of_range_names_wait(fleet: Fleet) -> None:
    agent = fleet.nodes[0]
    for wait in ("31", "-1", "nan"):
        r = await fleet.api.client.get(
            "/api/v1/agent/fleet", params={"after": 1, "wait": wait}, headers=agent.headers
        )
        body = assert_error(r, 400, "wait")
        assert body.get("field") == "wait"


async def test_operator_block_wakes_the_long_poll(fleet: Fleet) -> None:
    agent = fleet.nodes[0]
    first = await fleet.orders(agent)
    assert first["pending_commands"] == 0
    poll = asyncio.create_task(fleet.orders(agent, after=first["version"], wait=30))
    await asyncio.sleep(0.05)
    r = await fleet.api.client.post(
        f"/api/v1/nodes/{agent.uuid}/rules",
        json={"target": "198.51.100.7"},
        headers=fleet.ws.headers,
    )
    assert r.status_code == 201, r.text
    woken = await asyncio.wait_for(poll, 10)
    assert woken["version"] != first["version"]
    assert woken["pending_commands"] == 1
    assert woken["config_version"] > first["config_version"]


async def test_restart_continues_the_incident_and_its_orders(tmp_path: Path) -> None:
    clock = SimClock()
    async with running(tmp_path, clock=clock) as first:
        ws = await first.workspace("acme")
        fleet = await make_fleet(first, ws)
        await fleet.seconds(25, quiet)  # a ready baseline, saved at stop
        await fleet.seconds(3, dns_amplification)
        (incident,) = await fleet.fleet_incidents()
    # ftcontrol stopped; a new one on the same store
    async with running(tmp_path, clock=clock) as again:
        fleet2 = Fleet(again, ws, fleet.nodes)
        engine = fleet_of(again.app.state)
        (group,) = engine.groups.values()
        assert group.baseline.ready and group.baseline.samples == 25
        (still,) = await fleet2.fleet_incidents()
        assert still["uuid"] == incident["uuid"] and still["status"] == "active"
        for agent in fleet.nodes:
            (order,) = (await fleet2.orders(agent))["orders"]
            assert order["incident_uuid"] == incident["uuid"]
            assert order["family"] == "dns_amplification"
        # the attack goes on: the same incident, no second one
        await fleet2.seconds(2, dns_amplification)
        assert [i["uuid"] for i in await fleet2.fleet_incidents()] == [incident["uuid"]]
        await fleet2.seconds(3, quiet)
        (ended,) = await fleet2.fleet_incidents()
        assert ended["status"] == "resolved"
        assert (await fleet2.orders(fleet.nodes[0]))["orders"] == []


async def test_a_resumed_incident_does_not_cool_down_on_the_first_node_back(
    tmp_path: Path,
) -> None:
    """After a restart the nodes that were reporting stay expected (from the store's last
    reports): the seconds of the one node back first are a part of the group's sum, not
    complete quiet seconds that would resolve the incident behind the others' backs."""
    clock = SimClock()
    async with running(tmp_path, clock=clock) as first:
        ws = await first.workspace("acme")
        fleet = await make_fleet(first, ws)
        await fleet.seconds(3, dns_amplification)
        (incident,) = await fleet.fleet_incidents()
    async with running(tmp_path, clock=clock) as again:
        fleet2 = Fleet(again, ws, fleet.nodes)
        # one node back (quiet: its share of the attack is small), the others not yet
        await fleet2.seconds(6, quiet, nodes=fleet.nodes[:1])  # cooldown_s is 3
        await fleet2.after_grace()
        (still,) = await fleet2.fleet_incidents()
        assert still["uuid"] == incident["uuid"] and still["status"] == "active"
        # every node back, the attack still on: the same incident, no second one
        await fleet2.seconds(2, dns_amplification)
        (still,) = await fleet2.fleet_incidents()
        assert still["uuid"] == incident["uuid"] and still["status"] == "active"
        # the whole group quiet for the cool-down: resolved after the restart
        await fleet2.seconds(3, quiet)
        (ended,) = await fleet2.fleet_incidents()
        assert ended["status"] == "resolved"
        assert ended["ended_at"] is not None


async def test_restart_with_fleet_off_closes_an_active_fleet_incident(tmp_path: Path) -> None:
    clock = SimClock()
    async with running(tmp_path, clock=clock) as first:
        ws = await first.workspace("acme")
        fleet = await make_fleet(first, ws)
        await fleet.seconds(3, dns_amplification)
        (incident,) = await fleet.fleet_incidents()
        assert incident["status"] == "active"
    off = msgspec.structs.replace(SETTINGS, enabled=False)
    async with running(tmp_path, off, clock) as again:
        (ended,) = await Fleet(again, ws, fleet.nodes).fleet_incidents()
        assert ended["uuid"] == incident["uuid"] and ended["status"] == "resolved"

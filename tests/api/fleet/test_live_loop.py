"""The engine's own background loop on the real clock (no test ticks): points posted for
the current seconds, a burst over the group's threshold, and an agent's long-poll held
open beforehand answers with the order once the loop opens the incident."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from control.fleet.settings import FleetSettings
from tests.api.fleet.conftest import Fleet, deploy, dns_amplification, quiet, running


async def test_background_loop_opens_and_wakes_the_long_poll(tmp_path: Path) -> None:
    async with running(tmp_path, FleetSettings(refresh_s=0.05), time.time) as api:
        ws = await api.workspace("acme")
        fleet = Fleet(api, ws)
        for i in range(4):
            fleet.nodes.append(await deploy(api, ws, f"edge-{i}", f"203.0.113.{10 + i}"))
        await asyncio.sleep(0.2)  # the loop has read the members
        now = math.floor(time.time())
        for agent in fleet.nodes:
            await fleet.post(agent, quiet(now - 1))
        first = await fleet.orders(fleet.nodes[0])
        poll = asyncio.create_task(fleet.orders(fleet.nodes[0], after=first["version"], wait=20))
        # 4 x 5,000 pps of DNS answers: over 5 x the 3,000 pps floor, confirmed at once
        for agent in fleet.nodes:
            await fleet.post(agent, dns_amplification(now, attack_pps=5000.0))
        woken = await asyncio.wait_for(poll, 15)
        (incident,) = await fleet.fleet_incidents()
        assert incident["family"] == "dns_amplification"
        assert [o["incident_uuid"] for o in woken["orders"]] == [incident["uuid"]]

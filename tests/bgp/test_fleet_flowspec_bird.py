"""A fleet incident's upstream rule, asserted in BIRD: a DNS amplification spread over a
declared prefix's nodes (policy flowspec) whose sum passes the group's uplink share is
announced as ONE FlowSpec rule for the prefix (not one /32 per node), never RTBH, and
withdrawn after the hold-down once the fleet incident resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.bgp import prefixes
from control.bgp.lifespan import BgpSettings
from lab.bird import FLOW4, PROTOCOL, UNICAST4, BgpLab
from tests.api.fleet.conftest import Fleet, deploy, dns_amplification, quiet, running
from tests.bgp.daemons import eventually, table

pytestmark = [pytest.mark.lab, pytest.mark.bgp]

PREFIX = "203.0.113.0/24"


async def test_fleet_flowspec_for_the_prefix_and_withdrawal(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    bgp = BgpSettings(
        config=bgp_lab.speaker_config(withdraw_hold_down_s=1),
        workdir=bgp_workdir,
        argv_prefix=tuple(bgp_lab.speaker_argv_prefix),
    )
    async with running(tmp_path, bgp=bgp) as api:
        ws = await api.workspace("acme")
        await prefixes.add_prefix(api.app.state.db, "acme", PREFIX)
        await eventually(lambda: bgp_lab.session_state(PROTOCOL) == "Established", "session")
        fleet = Fleet(api, ws)
        for i in range(4):
            agent = await deploy(api, ws, f"edge-{i}", f"203.0.113.{10 + i}")
            r = await api.client.patch(
                f"/api/v1/nodes/{agent.uuid}",
                json={"mitigation_policy": "flowspec"},
                headers=ws.headers,
            )
            assert r.status_code == 200, r.text
            fleet.nodes.append(agent)
        r = await api.client.put(
            "/api/v1/fleet/groups", json={"group": PREFIX, "uplink_mbps": 10}, headers=ws.headers
        )
        assert r.status_code == 200, r.text
        await fleet.tick()

        await fleet.seconds(2, quiet)
        await fleet.seconds(3, dns_amplification)  # ~45 Mbit/s summed > 0.8 x 10 Mbit/s
        (incident,) = await fleet.fleet_incidents()
        assert incident["group"] == PREFIX  # the prefix's incident, not the workspace's
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the fleet FlowSpec rule")
        assert route.net == f"flow4 {{ dst {PREFIX}; proto 17; sport 53; }}"
        assert table(bgp_lab, UNICAST4) == []  # never a blackhole of the prefix
        r = await api.get("/api/v1/bgp/announcements", ws, in_force=True)
        (announced,) = r.json()["announcements"]
        assert announced["trigger"] == "fleet_uplink_share"
        assert announced["node_uuid"] is None
        assert announced["incident_uuid"] == incident["uuid"]
        assert announced["destination"] == PREFIX

        await fleet.seconds(3, quiet)  # cool-down: resolved; withdrawn after the hold-down
        (ended,) = await fleet.fleet_incidents()
        assert ended["status"] == "resolved"
        await eventually(lambda: table(bgp_lab, FLOW4) == [], "the rule withdrawn")
        # the channels hear of both, as for a node incident's rule
        told = [e.kind for e in api.events if e.incident_uuid == incident["uuid"]]
        assert told.count("upstream_announced") == 1
        await eventually(
            lambda: [e.kind for e in api.events].count("upstream_withdrawn") == 1, "the notice"
        )
        r = await api.get("/api/v1/bgp/announcements", ws, in_force=False)
        assert [a["withdraw_reason"] for a in r.json()["announcements"]] == ["resolved"]


async def test_fleet_flowspec_refused_for_a_local_policy_and_recorded(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    bgp = BgpSettings(
        config=bgp_lab.speaker_config(), workdir=bgp_workdir,
        argv_prefix=tuple(bgp_lab.speaker_argv_prefix),
    )  # fmt: skip
    async with running(tmp_path, bgp=bgp) as api:
        ws = await api.workspace("acme")
        await prefixes.add_prefix(api.app.state.db, "acme", PREFIX)
        await eventually(lambda: bgp_lab.session_state(PROTOCOL) == "Established", "session")
        fleet = Fleet(api, ws)
        for i in range(4):  # mitigation_policy left at 'local'
            fleet.nodes.append(await deploy(api, ws, f"edge-{i}", f"203.0.113.{10 + i}"))
        r = await api.client.put(
            "/api/v1/fleet/groups", json={"group": PREFIX, "uplink_mbps": 10}, headers=ws.headers
        )
        assert r.status_code == 200, r.text
        await fleet.tick()
        await fleet.seconds(3, dns_amplification)
        (incident,) = await fleet.fleet_incidents()
        r = await api.get(f"/api/v1/incidents/{incident['uuid']}", ws)
        (refusal,) = r.json()["incident"]["upstream_refusals"]
        assert refusal["trigger"] == "fleet_uplink_share"
        assert "local" in refusal["reason"]
        assert r.json()["incident"]["announcements"] == []
        assert table(bgp_lab, FLOW4) == []

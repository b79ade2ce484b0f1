"""The fleet write API (IncidentService.open_fleet / update_fleet / set_fleet_nodes /
resolve_fleet / active_fleet) against a real SQLite store, and the link of node incidents
opened during a fleet incident."""

from __future__ import annotations

import time
import uuid

import pytest

from control.core.errors import Conflict, InvalidValue, NotFound
from control.incidents.fleet import FleetNodeFigures
from tests.api.conftest import Api, Workspace
from tests.api.incidents.fleet_data import DNS_AMP, figures, fleet_incident, node_id, report


async def test_open_fleet_stores_a_fleet_row_and_publishes_opened(api: Api, ws: Workspace) -> None:
    started = time.time() - 5
    opened = await api.incidents.open_fleet(ws.id, "203.0.113.0/24", started, figures())
    assert uuid.UUID(opened.uuid).version == 4
    assert (opened.scope, opened.group, opened.node) == ("fleet", "203.0.113.0/24", None)
    assert (opened.family, opened.severity, opened.status) == (
        "dns_amplification",
        "high",
        "active",
    )
    assert opened.peak_pps == 225_000.0 and opened.protocols == {"udp": 99.0, "tcp": 1.0}
    assert [r.match for r in opened.mitigation_rules] == ["signature proto=17 sport=53"]
    assert "prefix 203.0.113.0/24" in opened.summary
    rows = list(
        await api.app.state.db.execute_fetchall(
            "SELECT scope, group_key, node_id, fleet_vectors, started_at FROM incidents "
            "WHERE uuid = ?",
            (opened.uuid,),
        )
    )
    assert rows[0]["scope"] == "fleet" and rows[0]["group_key"] == "203.0.113.0/24"
    assert rows[0]["node_id"] is None and rows[0]["started_at"] == started
    assert '"amp_port":53' in rows[0]["fleet_vectors"]
    assert [(e.kind, e.incident_uuid) for e in api.events] == [("opened", opened.uuid)]
    assert api.events[0].incident.scope == "fleet"


async def test_open_fleet_refuses_a_bad_group_and_a_second_active_one(
    api: Api, ws: Workspace
) -> None:
    for bad in ("203.0.113.1/24", "not-a-prefix", "203.0.113.0/33", ""):
        with pytest.raises(InvalidValue) as err:
            await api.incidents.open_fleet(ws.id, bad, time.time(), figures())
        assert err.value.field == "group"
    with pytest.raises(InvalidValue) as err:
        await api.incidents.open_fleet(ws.id, "workspace", time.time(), figures(peak_pps=-1.0))
    assert err.value.field == "peak_pps"
    first = await api.incidents.open_fleet(ws.id, "workspace", time.time(), figures())
    with pytest.raises(Conflict):
        await api.incidents.open_fleet(ws.id, "workspace", time.time(), figures())
    await api.incidents.resolve_fleet(ws.id, first.uuid, time.time())
    again = await api.incidents.open_fleet(ws.id, "workspace", time.time(), figures())
    assert again.uuid != first.uuid


async def test_update_fleet_escalates_on_a_severity_rise_and_peaks_only_rise(
    api: Api, ws: Workspace
) -> None:
    opened = await api.incidents.open_fleet(ws.id, "workspace", time.time(), figures("medium"))
    same = await api.incidents.update_fleet(
        ws.id, opened.uuid, figures("medium", peak_pps=100.0, peak_bps=1e9)
    )
    assert same.peak_pps == 225_000.0 and same.peak_bps == 2.2e9
    higher = await api.incidents.update_fleet(
        ws.id,
        opened.uuid,
        figures("critical", peak_pps=900_000.0, vectors=[DNS_AMP, DNS_AMP]),
    )
    assert higher.severity == "critical" and higher.peak_pps == 900_000.0
    assert [e.kind for e in api.events] == ["opened", "updated", "escalated"]
    (active,) = await api.incidents.active_fleet()
    assert active.vectors == [DNS_AMP, DNS_AMP] and active.severity == "critical"


async def test_set_fleet_nodes_shows_nodes_counters_and_no_event(api: Api, ws: Workspace) -> None:
    incident, nodes = await fleet_incident(api, ws, node_names=("edge-1", "edge-2", "edge-3"))
    assert [e.kind for e in api.events] == ["opened"]
    assert [n.node_name for n in incident.nodes] == ["edge-1", "edge-2", "edge-3"]
    first, second, _ = incident.nodes
    assert first.node_uuid == nodes[0]["uuid"] and first.state == "reporting"
    assert (first.dropped_packets, first.spared_packets) == (9_000, 40)
    assert [r.match for r in first.rules] == ["signature proto=17 sport=53"]
    assert first.in_force_since is not None and incident.mitigated_at is not None
    assert second.rules == [] and second.in_force_since is None
    assert abs(first.share - 1 / 3) < 1e-9

    # No report: the stored rules stay; counters never go down (an agent restarted).
    first_id = await node_id(api, nodes[0]["uuid"])
    second_id = await node_id(api, nodes[1]["uuid"])
    await api.incidents.set_fleet_nodes(
        ws.id,
        incident.uuid,
        [
            FleetNodeFigures(
                node_id=first_id, share=0.5, peak_pps=1.0, peak_bps=1.0, state="missing"
            ),
            FleetNodeFigures(
                node_id=second_id,
                share=0.5,
                peak_pps=200_000.0,
                peak_bps=2e9,
                state="reporting",
                report=report(incident.uuid, 10, 1, time.time()),
            ),
        ],
    )
    await api.incidents.set_fleet_nodes(
        ws.id,
        incident.uuid,
        [
            FleetNodeFigures(
                node_id=second_id,
                share=0.5,
                peak_pps=5.0,
                peak_bps=5.0,
                state="reporting",
                report=report(incident.uuid, 3, 0, time.time()),
            )
        ],
    )
    after = await api.incidents.get(ws.id, incident.uuid)
    by_name = {n.node_name: n for n in after.nodes}
    assert by_name["edge-1"].state == "missing" and by_name["edge-1"].dropped_packets == 9_000
    assert len(by_name["edge-1"].rules) == 1
    assert by_name["edge-1"].peak_pps == 225_000.0 / 3  # peaks only rise
    assert (by_name["edge-2"].dropped_packets, by_name["edge-2"].peak_pps) == (10, 200_000.0)
    assert [e.kind for e in api.events] == ["opened"]


async def test_set_fleet_nodes_refuses_nodes_of_another_workspace(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    incident, _ = await fleet_incident(api, ws)
    stranger = await api.node(other, "stranger")
    stranger_id = await node_id(api, stranger["uuid"])
    nodes = [
        FleetNodeFigures(node_id=stranger_id, share=1, peak_pps=1, peak_bps=1, state="reporting")
    ]
    with pytest.raises(InvalidValue) as err:
        await api.incidents.set_fleet_nodes(ws.id, incident.uuid, nodes)
    assert err.value.field == "node_id"
    with pytest.raises(InvalidValue) as err:
        bad = [
            FleetNodeFigures(
                node_id=stranger_id, share=1.5, peak_pps=1, peak_bps=1, state="reporting"
            )
        ]
        await api.incidents.set_fleet_nodes(ws.id, incident.uuid, bad)
    assert err.value.field == "share"
    # Another workspace cannot write to it at all.
    with pytest.raises(NotFound):
        await api.incidents.set_fleet_nodes(other.id, incident.uuid, [])
    with pytest.raises(NotFound):
        await api.incidents.update_fleet(other.id, incident.uuid, figures())
    with pytest.raises(NotFound):
        await api.incidents.resolve_fleet(other.id, incident.uuid, time.time())
    assert [n.node_name for n in (await api.incidents.get(ws.id, incident.uuid)).nodes] == [
        "edge-1",
        "edge-2",
    ]


async def test_resolve_fleet_publishes_once_and_ends_the_incident(api: Api, ws: Workspace) -> None:
    started = time.time() - 60
    opened = await api.incidents.open_fleet(ws.id, "workspace", started, figures())
    resolved = await api.incidents.resolve_fleet(ws.id, opened.uuid, started + 50)
    assert resolved.status == "resolved" and resolved.end_reason == "cooled_down"
    assert resolved.duration_sec == 50
    again = await api.incidents.resolve_fleet(ws.id, opened.uuid, time.time())
    assert again.ended_at == resolved.ended_at
    assert [e.kind for e in api.events] == ["opened", "resolved"]
    with pytest.raises(Conflict):
        await api.incidents.update_fleet(ws.id, opened.uuid, figures())
    assert await api.incidents.active_fleet() == []


async def test_fleet_calls_refuse_a_node_incident(api: Api, ws: Workspace) -> None:
    node = await api.node(ws)
    node_incident = await api.incident(ws, node["uuid"])
    with pytest.raises(NotFound):
        await api.incidents.update_fleet(ws.id, node_incident.uuid, figures())
    with pytest.raises(NotFound):
        await api.incidents.resolve_fleet(ws.id, node_incident.uuid, time.time())


async def test_active_fleet_lists_every_workspace_active_ones(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    a = await api.incidents.open_fleet(ws.id, "workspace", 1_765_150_000.0, figures())
    b = await api.incidents.open_fleet(other.id, "198.51.100.0/24", 1_765_150_001.0, figures())
    c = await api.incidents.open_fleet(other.id, "workspace", time.time(), figures())
    await api.incidents.resolve_fleet(other.id, c.uuid, time.time())
    active = await api.incidents.active_fleet()
    assert [(x.uuid, x.workspace_id, x.group_key) for x in active] == [
        (a.uuid, ws.id, "workspace"),
        (b.uuid, other.id, "198.51.100.0/24"),
    ]
    assert active[0].vectors == [DNS_AMP] and active[0].started_at == 1_765_150_000.0
    assert (active[1].family, active[1].peak_pps, active[1].peak_bps) == (
        "dns_amplification",
        225_000.0,
        2.2e9,
    )


async def test_node_incident_links_to_the_fleet_incident_of_its_groups(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    inside = await api.node(ws, "inside", ip="203.0.113.40")
    outside = await api.node(ws, "outside", ip="192.0.2.40")
    foreign = await api.node(other, "foreign", ip="203.0.113.41")
    fleet = await api.incidents.open_fleet(ws.id, "203.0.113.0/24", time.time(), figures())
    linked = await api.incident(ws, inside["uuid"])
    alone = await api.incident(ws, outside["uuid"])
    not_theirs = await api.incident(other, foreign["uuid"])
    assert linked.fleet_incident_uuid == fleet.uuid and linked.scope == "node"
    assert alone.fleet_incident_uuid is None and not_theirs.fleet_incident_uuid is None

    # The 'workspace' group holds every node of the workspace.
    whole = await api.incidents.open_fleet(ws.id, "workspace", time.time() + 1, figures())
    assert (await api.incident(ws, outside["uuid"])).fleet_incident_uuid == whole.uuid
    # Once resolved, new node incidents are on their own.
    await api.incidents.resolve_fleet(ws.id, fleet.uuid, time.time())
    await api.incidents.resolve_fleet(ws.id, whole.uuid, time.time())
    assert (await api.incident(ws, inside["uuid"])).fleet_incident_uuid is None

"""REST API v1 incidents: list filters and pages, full detail, operator status, events."""

from __future__ import annotations

import time

import msgspec
import pytest

from control.core.errors import Conflict, InvalidValue, NotFound
from control.incidents.schemas import MitigationRule, TopSource
from control.incidents.service import IncidentChange, IncidentReport
from tests.api.conftest import Api, Workspace, assert_error

LIST_FIELDS = {
    "uuid",
    "node",
    "family",
    "subtype",
    "severity",
    "status",
    "started_at",
    "ended_at",
    "peak_pps",
    "peak_bps",
    "duration_sec",
    "source_count",
    "scope",
    "group",
    "fleet_incident_uuid",
    "nodes",
}
DETAIL_FIELDS = LIST_FIELDS | {
    "announcements",
    "upstream_refusals",
    "protocols",
    "top_sources",
    "geo_origin",
    "summary",
    "mitigation_rules",
    "mitigated_at",
    "pcap",
    "peak_burst_pps",
    "peak_burst_bps",
    "end_reason",
}


async def test_detail_has_every_field(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "web-prod-1")
    start = time.time() - 342
    opened = await api.incident(
        ws,
        node["uuid"],
        family="dns_amplification",
        subtype="any_query",
        severity="critical",
        started_at=start,
        peak_pps=2_450_000,
        peak_bps=3.1e9,
        protocols={"udp": 97.5, "tcp": 2.5},
        top_sources=[
            TopSource(ip="8.8.8.8", pps=900_000),
            TopSource(ip="1.1.1.1", pps=300_000),
            TopSource(ip="10.1.2.3", pps=100_000),
        ],
        mitigation_rules=[
            MitigationRule(
                kind="signature", match="udp sport 53", ttl_sec=300, dropped_packets=12345
            )
        ],
    )
    await api.incidents.resolve(ws.id, opened.uuid, ended_at=start + 342)
    r = await api.get(f"/api/v1/incidents/{opened.uuid}", ws)
    assert r.status_code == 200
    inc = r.json()["incident"]
    assert r.json()["ok"] is True and set(inc) == DETAIL_FIELDS
    assert inc["node"] == {"uuid": node["uuid"], "name": "web-prod-1"}
    assert (inc["scope"], inc["group"], inc["fleet_incident_uuid"], inc["nodes"]) == (
        "node",
        None,
        None,
        [],
    )
    assert (inc["family"], inc["subtype"], inc["severity"], inc["status"]) == (
        "dns_amplification",
        "any_query",
        "critical",
        "resolved",
    )
    assert inc["duration_sec"] == 342 and inc["peak_pps"] == 2_450_000
    assert inc["protocols"] == {"udp": 97.5, "tcp": 2.5}
    assert [s["country"] for s in inc["top_sources"]] == ["US", "AU", None]
    assert inc["geo_origin"][0] == {"country": "US", "share": 69.2}
    assert {g["country"] for g in inc["geo_origin"]} == {"US", "AU", "unknown"}
    assert inc["mitigation_rules"][0]["match"] == "udp sport 53"
    assert inc["mitigated_at"] is not None
    summary = inc["summary"]
    assert "dns amplification" in summary and "web-prod-1" in summary
    assert "2.45 Mpps" in summary and "5 min 42 s" in summary and "12345 packets" in summary
    assert "AI" not in summary


async def test_list_shape_order_and_filters(api: Api, ws: Workspace) -> None:
    a = await api.node(ws, "a")
    b = await api.node(ws, "b")
    now = time.time()
    i1 = await api.incident(ws, a["uuid"], severity="low", started_at=now - 300)
    i2 = await api.incident(
        ws, a["uuid"], severity="critical", family="syn_flood", started_at=now - 200
    )
    i3 = await api.incident(ws, b["uuid"], severity="critical", started_at=now - 100)
    await api.incidents.resolve(ws.id, i1.uuid)
    await api.incidents.set_status(ws.id, i2.uuid, "false_positive")
    body = (await api.get("/api/v1/incidents", ws)).json()
    assert body["ok"] is True and body["total"] == 3
    assert (body["limit"], body["offset"]) == (50, 0)
    assert [i["uuid"] for i in body["incidents"]] == [i3.uuid, i2.uuid, i1.uuid]  # newest first
    assert set(body["incidents"][0]) == LIST_FIELDS

    async def uuids(**params: str) -> list[str]:
        r = (await api.get("/api/v1/incidents", ws, **params)).json()
        assert r["total"] == len(r["incidents"])
        return [i["uuid"] for i in r["incidents"]]

    assert await uuids(status="active") == [i3.uuid]
    assert await uuids(status="resolved") == [i1.uuid]
    assert await uuids(status="false_positive") == [i2.uuid]
    assert await uuids(severity="critical") == [i3.uuid, i2.uuid]
    assert await uuids(severity="low") == [i1.uuid]
    assert await uuids(severity="medium") == []
    assert await uuids(node=a["uuid"]) == [i2.uuid, i1.uuid]
    assert await uuids(node=b["uuid"], severity="critical", status="active") == [i3.uuid]
    for params, field in (
        ({"status": "open"}, "status"),
        ({"severity": "huge"}, "severity"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
    ):
        r = await api.get("/api/v1/incidents", ws, **params)
        assert assert_error(r, 400, field)["field"] == field
    assert_error(await api.get("/api/v1/incidents", ws, node="nope"), 404, "node")


async def test_list_pagination_edges(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "a")
    now = time.time()
    made = [await api.incident(ws, node["uuid"], started_at=now - i) for i in range(7)]
    pages = []
    for offset in (0, 3, 6):
        r = (await api.get("/api/v1/incidents", ws, limit=3, offset=offset)).json()
        assert r["total"] == 7 and (r["limit"], r["offset"]) == (3, offset)
        pages += [i["uuid"] for i in r["incidents"]]
    assert pages == [m.uuid for m in made]
    assert (await api.get("/api/v1/incidents", ws, offset=7)).json()["incidents"] == []
    full = (await api.get("/api/v1/incidents", ws, limit=100)).json()
    assert len(full["incidents"]) == 7


async def test_patch_status_by_operator(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "a")
    inc = await api.incident(ws, node["uuid"])
    url = f"/api/v1/incidents/{inc.uuid}"
    r = await api.client.patch(url, json={"status": "resolved"}, headers=ws.headers)
    assert r.status_code == 200, r.text
    resolved = r.json()["incident"]
    assert resolved["status"] == "resolved" and resolved["ended_at"] is not None
    again = await api.client.patch(url, json={"status": "resolved"}, headers=ws.headers)
    assert again.json()["incident"] == resolved  # no change, no event
    r = await api.client.patch(url, json={"status": "false_positive"}, headers=ws.headers)
    assert r.json()["incident"]["status"] == "false_positive"
    assert r.json()["incident"]["ended_at"] == resolved["ended_at"]
    assert_error(
        await api.client.patch(url, json={"status": "resolved"}, headers=ws.headers),
        409,
        "false_positive",
    )
    for body, field in (
        ({"status": "active"}, "status"),
        ({"status": "closed"}, "status"),
        ({}, "status"),
        ({"status": "resolved", "note": "x"}, "note"),
    ):
        r = await api.client.patch(url, json=body, headers=ws.headers)
        assert assert_error(r, 400, field)["field"] == field
    assert_error(
        await api.client.patch(
            "/api/v1/incidents/nope", json={"status": "resolved"}, headers=ws.headers
        ),
        404,
    )
    assert [e.kind for e in api.events] == ["opened", "resolved", "false_positive"]


async def test_events_follow_the_write_path(api: Api, ws: Workspace) -> None:
    node = await api.node(ws, "a")
    inc = await api.incident(ws, node["uuid"], severity="medium", peak_pps=1000)
    await api.incidents.update(ws.id, inc.uuid, IncidentChange(peak_pps=500, severity="medium"))
    await api.incidents.update(ws.id, inc.uuid, IncidentChange(peak_pps=9000, severity="high"))
    await api.incidents.update(
        ws.id,
        inc.uuid,
        IncidentChange(mitigation_rules=[MitigationRule(kind="source", match="192.0.2.1/32")]),
    )
    await api.incidents.resolve(ws.id, inc.uuid)
    await api.incidents.resolve(ws.id, inc.uuid)  # replayed by an agent: no second event
    kinds = [e.kind for e in api.events]
    assert kinds == ["opened", "updated", "escalated", "updated", "resolved"]
    last = api.events[-1]
    assert last.workspace_id == ws.id and last.incident_uuid == inc.uuid
    assert last.incident.status == "resolved" and last.incident.peak_pps == 9000
    assert last.incident.severity == "high" and last.incident.mitigated_at is not None
    shown = (await api.get(f"/api/v1/incidents/{inc.uuid}", ws)).json()["incident"]
    assert msgspec.to_builtins(last.incident) == shown
    with pytest.raises(Conflict):
        await api.incidents.update(ws.id, inc.uuid, IncidentChange(peak_pps=1))


async def test_store_layer_refuses_bad_reports(api: Api, ws: Workspace, other: Workspace) -> None:
    node = await api.node(ws, "a")
    with pytest.raises(InvalidValue) as bad_family:
        await api.incidents.open(ws.id, node["uuid"], IncidentReport(family="x", severity="low"))
    assert bad_family.value.field == "family"
    with pytest.raises(InvalidValue):
        await api.incidents.open(
            ws.id, node["uuid"], IncidentReport(family="udp_flood", severity="low", peak_pps=-1)
        )
    with pytest.raises(NotFound):  # another workspace's node
        await api.incidents.open(
            other.id, node["uuid"], IncidentReport(family="udp_flood", severity="low")
        )
    assert api.events == []


async def test_workspaces_never_see_each_others_incidents(
    api: Api, ws: Workspace, other: Workspace
) -> None:
    node = await api.node(ws, "a")
    inc = await api.incident(ws, node["uuid"])
    theirs = await api.node(other, "b")
    await api.incident(other, theirs["uuid"])
    listed = (await api.get("/api/v1/incidents", other)).json()
    assert [i["node"]["name"] for i in listed["incidents"]] == ["b"]
    assert_error(await api.get(f"/api/v1/incidents/{inc.uuid}", other), 404)
    r = await api.client.patch(
        f"/api/v1/incidents/{inc.uuid}", json={"status": "resolved"}, headers=other.headers
    )
    assert_error(r, 404)
    assert_error(await api.get("/api/v1/incidents", other, node=node["uuid"]), 404)
    assert (await api.get(f"/api/v1/incidents/{inc.uuid}", ws)).json()["incident"]["status"] == (
        "active"
    )


async def test_source_count_is_shown_only_rises_and_reaches_the_events(
    api: Api, ws: Workspace
) -> None:
    from control.notify.message import Notice

    node = await api.node(ws, "edge")
    three = [TopSource(ip=f"198.51.100.{i}", pps=10) for i in (1, 2, 3)]
    inc = await api.incident(ws, node["uuid"], source_count=4821, top_sources=three)
    detail = (await api.get(f"/api/v1/incidents/{inc.uuid}", ws)).json()["incident"]
    assert detail["source_count"] == 4821 and detail["pcap"] is None
    listed = (await api.get("/api/v1/incidents", ws)).json()["incidents"]
    assert [i["source_count"] for i in listed] == [4821]
    # A lower count (e.g. a report after the attack thinned out) does not lower it.
    await api.incidents.update(ws.id, inc.uuid, IncidentChange(source_count=100))
    assert (await api.incidents.get(ws.id, inc.uuid)).source_count == 4821
    await api.incidents.update(ws.id, inc.uuid, IncidentChange(source_count=5000))
    assert (await api.incidents.get(ws.id, inc.uuid)).source_count == 5000
    # Every event carries it; the notification text takes it as is (not len(top_sources)).
    assert [e.incident.source_count for e in api.events] == [4821, 4821, 5000]
    assert Notice.from_incident("opened", api.events[-1].incident).source_count == 5000
    # Listed top sources are distinct sources: the count is never below their number.
    other = await api.incident(ws, node["uuid"], top_sources=three[:2])
    assert other.source_count == 2
    await api.incidents.update(ws.id, other.uuid, IncidentChange(top_sources=three))
    assert (await api.incidents.get(ws.id, other.uuid)).source_count == 3
    with pytest.raises(InvalidValue) as err:
        await api.incident(ws, node["uuid"], source_count=-1)
    assert err.value.field == "source_count"

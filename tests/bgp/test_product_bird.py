"""Upstream mitigation in the product, asserted in BIRD (through birdc): the REST API's
escalate / withdraw, the Agent API's metrics driving the automatic policy, TTL expiry,
the workspace-prefix refusal and a control plane restart. The app runs in-process with
its BGP engine; ExaBGP and BIRD are real, in the lab's namespaces."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from control.workspace.service import create_workspace
from lab import notify_receivers as rx
from lab.bird import FLOW4, FLOW6, UNICAST4, BgpLab
from tests.bgp.daemons import eventually, table, wait_routes
from tests.bgp.product import UDP_AMPLIFICATION, running_product

pytestmark = [pytest.mark.lab, pytest.mark.bgp]

DISCARD = "(generic, 0x80060000, 0x0)"  # traffic-rate-bytes 0: discard (RFC 8955 7.3)
SYN = {"kind": "rate_limit", "match": "syn dport 443", "action": "rate_limit", "proto": 6,
       "dst_port": 443, "tcp_flags": 2, "tcp_flags_mask": 18, "rate_pps": 1000}  # fmt: skip


async def test_manual_escalation_reaches_bird_and_delete_withdraws(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    async with running_product(bgp_lab, tmp_path, bgp_workdir) as p:
        outside = await p.node("foreign", "198.51.100.7")
        refused_incident = await p.incident(outside, UDP_AMPLIFICATION)
        v4 = await p.node("edge-4", "203.0.113.7")
        v6 = await p.node("edge-6", "2001:db8:5::7")
        inc4 = await p.incident(v4, UDP_AMPLIFICATION, {"kind": "signature", "match": "any"})
        inc6 = await p.incident(v6, {**UDP_AMPLIFICATION, "src_port": 53})

        # outside the workspace's prefixes: refused, recorded, never announced
        body = await p.escalate(refused_incident, "rtbh", 403)
        assert body["error"] == "198.51.100.7 is outside the workspace's declared prefixes"
        detail = await p.call("GET", f"/api/v1/incidents/{refused_incident}")
        [refusal] = detail["incident"]["upstream_refusals"]
        assert (refusal["action"], refusal["trigger"]) == ("rtbh", "manual")
        assert refusal["reason"] == body["error"]

        flow = await p.escalate(inc4, "flowspec")
        [announced] = flow["announcements"]
        [partial] = flow["refusals"]  # the rule that matches everything is RTBH's business
        assert partial["reason"] == (
            "any: the rule matches all traffic to the node; escalate to RTBH instead"
        )
        assert (announced["kind"], announced["destination"], announced["protocol"]) == (
            "flowspec", "203.0.113.7/32", 17)  # fmt: skip
        assert (announced["src_port"], announced["action"], announced["in_force"]) == (
            11211, "discard", True)  # fmt: skip
        await p.escalate(inc4, "rtbh")
        await p.escalate(inc6, "flowspec")

        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the flow4 rule")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 11211; }"
        assert route.attributes["BGP.ext_community"] == DISCARD
        [v6_route] = await eventually(lambda: table(bgp_lab, FLOW6), "the flow6 rule")
        assert v6_route.net == "flow6 { dst 2001:db8:5::7/128; next header 17; sport 53; }"
        [blackhole] = await eventually(lambda: table(bgp_lab, UNICAST4), "the RTBH route")
        assert (blackhole.net, blackhole.attributes["BGP.community"]) == (
            "203.0.113.7/32", "(65535,666)")  # fmt: skip
        # the refused one came first: commands go in order, so it would be there by now
        assert all("198.51.100" not in r.net for r in table(bgp_lab, UNICAST4))

        listed = await p.announcements(in_force=True)
        assert sorted((a["kind"], a["destination"]) for a in listed) == [
            ("flowspec", "2001:db8:5::7/128"), ("flowspec", "203.0.113.7/32"),
            ("rtbh", "203.0.113.7/32")]  # fmt: skip
        shown = (await p.call("GET", f"/api/v1/incidents/{inc4}"))["incident"]["announcements"]
        assert sorted(a["kind"] for a in shown) == ["flowspec", "rtbh"]

        # another workspace sees none of it and cannot withdraw it
        _, other = await create_workspace(p.app.state.db, "globex", "pro")
        theirs = {"Authorization": f"Bearer {other}"}
        r = await p.client.get("/api/v1/bgp/announcements", headers=theirs)
        assert (r.status_code, r.json()["announcements"]) == (200, [])
        r = await p.client.delete(f"/api/v1/bgp/announcements/{announced['id']}", headers=theirs)
        assert r.status_code == 404
        r = await p.client.post(
            f"/api/v1/incidents/{inc4}/escalate", json={"action": "rtbh"}, headers=theirs
        )
        assert r.status_code == 404

        body = await p.call("DELETE", f"/api/v1/bgp/announcements/{announced['id']}")
        assert (body["announcement"]["in_force"], body["announcement"]["withdraw_reason"]) == (
            False, "operator")  # fmt: skip
        await eventually(lambda: table(bgp_lab, FLOW4) == [], "the flow4 rule withdrawn")
        assert len(table(bgp_lab, UNICAST4)) == 1 and len(table(bgp_lab, FLOW6)) == 1
        await p.call("DELETE", f"/api/v1/bgp/announcements/{announced['id']}", 409)


async def test_ttl_expiry_withdraws_and_is_recorded(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    # 4 s: long enough to see the rule in BIRD first even on a loaded machine
    async with running_product(bgp_lab, tmp_path, bgp_workdir, default_ttl_s=4) as p:
        node = await p.node("edge-4", "203.0.113.7")
        incident = await p.incident(node, SYN)
        [announced] = (await p.escalate(incident, "flowspec"))["announcements"]
        assert (announced["action"], announced["rate_pps"]) == ("rate_limit", 1000.0)
        await eventually(lambda: table(bgp_lab, FLOW4), "the rule in BIRD")
        await eventually(lambda: table(bgp_lab, FLOW4) == [], "the rule withdrawn at its TTL")
        [after] = await p.announcements()
        assert (after["in_force"], after["withdraw_reason"]) == (False, "expired")


async def test_restart_reannounces_live_ones_and_never_expired_ones(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    async with running_product(bgp_lab, tmp_path, bgp_workdir) as p:
        token = p.token
        node = await p.node("edge-4", "203.0.113.7")
        incident = await p.incident(node, UDP_AMPLIFICATION, SYN)
        flows = (await p.escalate(incident, "flowspec"))["announcements"]
        await p.escalate(incident, "rtbh")
        await wait_routes(bgp_lab, FLOW4, 2, "both flow4 rules")
        await eventually(lambda: table(bgp_lab, UNICAST4), "the RTBH route")
    # ftcontrol stopped: its session is gone, and with it every route (the fail-safe)
    await eventually(lambda: table(bgp_lab, FLOW4) == [], "routes gone with the session")
    # one of the rules expires while ftcontrol is down
    expired_id = next(a["id"] for a in flows if a["protocol"] == 6)
    with sqlite3.connect(tmp_path / "ftcontrol.db") as db:
        db.execute(
            "UPDATE bgp_announcements SET expires_at = ? WHERE id = ?",
            (time.time() - 1, expired_id),
        )
    async with running_product(bgp_lab, tmp_path, bgp_workdir, token=token) as p:
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the live rule re-announced")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 11211; }"
        await eventually(lambda: table(bgp_lab, UNICAST4), "the RTBH re-announced")
        by_id = {a["id"]: a for a in await p.announcements()}
        assert (by_id[expired_id]["in_force"], by_id[expired_id]["withdraw_reason"]) == (
            False, "expired")  # fmt: skip
        assert sum(a["in_force"] for a in by_id.values()) == 2
        await asyncio.sleep(0.5)  # a late re-announcement of the expired one would show now
        assert len(table(bgp_lab, FLOW4)) == 1


async def test_automatic_escalation_from_agent_metrics_and_withdrawal_after_resolve(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    async with running_product(
        bgp_lab, tmp_path, bgp_workdir, rtbh_after_s=1, withdraw_hold_down_s=1
    ) as p:
        # 100 Mbit/s uplink, escalation at 0.8 of it; flowspec_then_rtbh
        node = await p.node("edge-4", "203.0.113.7",
                            mitigation_policy="flowspec_then_rtbh", uplink_mbps=100)  # fmt: skip
        local = await p.node("edge-local", "203.0.113.8", uplink_mbps=100)  # policy local
        saturated = await p.node("edge-6", "2001:db8:5::7", mitigation_policy="flowspec")
        # opened below the share: the metrics decide (an opening above it: next test)
        incident = await p.incident(node, UDP_AMPLIFICATION, peak_bps=60e6)
        await p.incident(local, UDP_AMPLIFICATION)
        sat_incident = await p.incident(
            saturated, {**UDP_AMPLIFICATION, "src_port": 389}, peak_bps=1e6
        )

        await p.metrics(node, 70e6)  # below the share: nothing
        await p.metrics(local, 500e6)  # policy local: never escalated
        await p.metrics(saturated, 1e6, saturated=True)  # the agent says the link is full
        [v6] = await eventually(lambda: table(bgp_lab, FLOW6), "the saturated node's rule")
        assert v6.net == "flow6 { dst 2001:db8:5::7/128; next header 17; sport 389; }"
        assert table(bgp_lab, FLOW4) == []

        await p.metrics(node, 85e6)  # above 0.8 x 100 Mbit/s
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the automatic rule")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 11211; }"
        assert table(bgp_lab, UNICAST4) == []  # RTBH only once the trigger held 1 s
        await asyncio.sleep(1.1)
        await p.metrics(node, 90e6)
        [blackhole] = await eventually(lambda: table(bgp_lab, UNICAST4), "the RTBH")
        assert blackhole.attributes["BGP.community"] == "(65535,666)"

        listed = await p.announcements(in_force=True)
        assert sorted((a["kind"], a["trigger"], a["incident_uuid"]) for a in listed) == [
            ("flowspec", "link_saturated", sat_incident), ("flowspec", "uplink_share", incident),
            ("rtbh", "uplink_share", incident)]  # fmt: skip

        await p.resolve(node, incident)  # withdrawn after the 1 s hold-down
        await eventually(
            lambda: table(bgp_lab, FLOW4) == [] and table(bgp_lab, UNICAST4) == [],
            "the resolved incident's routes withdrawn",
        )
        reasons = {(a["kind"], a["withdraw_reason"]) for a in await p.announcements(in_force=False)}
        assert reasons == {("flowspec", "resolved"), ("rtbh", "resolved")}
        assert len(table(bgp_lab, FLOW6)) == 1  # the other incident is still active


async def test_channels_hear_of_escalation_and_withdrawal(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    receiver = rx.webhook()
    try:
        async with running_product(bgp_lab, tmp_path, bgp_workdir) as p:
            e = receiver.expect
            config = {"url": receiver.base_url + e["path"], "secret": e["secret"]}
            await p.call("POST", "/api/v1/channels", 201,
                         json={"name": "noc", "type": "webhook", "config": config})  # fmt: skip
            node = await p.node("edge-4", "203.0.113.7")
            incident = await p.incident(node, UDP_AMPLIFICATION)
            [announced] = (await p.escalate(incident, "flowspec"))["announcements"]
            await p.escalate(incident, "flowspec")  # the same rule renewed: no new notice
            await eventually(lambda: table(bgp_lab, FLOW4), "the rule in BIRD")
            await p.call("DELETE", f"/api/v1/bgp/announcements/{announced['id']}")

            def upstream_notices() -> list[dict[str, Any]]:
                bodies = [json.loads(r.body) for r in receiver.requests]
                return [b for b in bodies if b["kind"].startswith("upstream_")]

            def two_notices() -> list[dict[str, Any]] | None:
                found = upstream_notices()
                return found if len(found) >= 2 else None

            notices = await eventually(two_notices, "two upstream notices")
            assert notices is not None
            assert [n["event"] for n in notices] == ["upstream_announced", "upstream_withdrawn"]
            rule = "FlowSpec discard 203.0.113.7/32 proto 17 sport 11211"
            assert [n["incident"]["upstream"] for n in notices] == [rule, rule]
            assert notices[0]["title"].startswith("DDoS attack escalated upstream (BGP)")
            assert all(n["incident"]["incident_uuid"] == incident for n in notices)
            assert receiver.problems() == []
            await asyncio.sleep(0.3)  # a notice for the renewal would have arrived by now
            assert len(upstream_notices()) == 2
    finally:
        receiver.close()


async def test_automatic_rule_is_renewed_while_the_trigger_holds(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    async with running_product(bgp_lab, tmp_path, bgp_workdir, default_ttl_s=4) as p:
        node = await p.node("edge-4", "203.0.113.7", mitigation_policy="flowspec", uplink_mbps=10)
        await p.incident(node, UDP_AMPLIFICATION)
        await p.metrics(node, 9e6)
        await eventually(lambda: table(bgp_lab, FLOW4), "the automatic rule")
        [first] = await p.announcements()
        await asyncio.sleep(2.2)  # less than half of the 4 s TTL left: due for renewal
        await p.metrics(node, 9e6)

        async def renewed() -> dict[str, Any] | None:
            [now] = await p.announcements()
            return now if now["expires_at"] > first["expires_at"] else None

        deadline = time.monotonic() + 10
        while (again := await renewed()) is None:
            assert time.monotonic() < deadline, "the rule was not renewed"
            await asyncio.sleep(0.05)
        assert (again["id"], again["in_force"]) == (first["id"], True)  # the same route
        assert len(table(bgp_lab, FLOW4)) == 1


async def test_an_opening_report_over_the_share_escalates_before_any_metrics_post(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    """At detection the node's last one-second point is up to a second old; the agent's
    opening report already carries the attack's windows, and they decide."""
    async with running_product(bgp_lab, tmp_path, bgp_workdir) as p:
        node = await p.node("edge-4", "203.0.113.7", mitigation_policy="flowspec", uplink_mbps=100)
        quiet = await p.node("edge-5", "203.0.113.9", mitigation_policy="flowspec", uplink_mbps=100)
        await p.incident(quiet, UDP_AMPLIFICATION, peak_bps=30e6, burst_bps=50e6)  # under 80
        incident = await p.incident(node, UDP_AMPLIFICATION, peak_bps=60e6, burst_bps=120e6)
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the rule from the opening")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 11211; }"
        [announced] = await p.announcements()
        assert (announced["incident_uuid"], announced["trigger"]) == (incident, "uplink_share")

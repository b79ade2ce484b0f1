"""The engine against real daemons: what ftcontrol announces shows up in BIRD (asked
through birdc), and goes away when withdrawn, expired, evicted or refused."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
from pathlib import Path

import pytest

from control.bgp.announcements import FlowSpecRule
from control.bgp.builder import Refusal, flowspec_from_figure, rtbh_for
from control.bgp.engine import Accepted
from ftcontract.agent_api import RuleFigure
from lab.bird import FLOW4, FLOW6, UNICAST4, UNICAST6, BgpLab
from tests.bgp.daemons import eventually, running_engine, table, wait_routes

pytestmark = [pytest.mark.lab, pytest.mark.bgp]

NODE_V4, NODE_V6 = "203.0.113.7", "2001:db8:5::7"
DECLARED = ["203.0.113.0/24", "2001:db8:5::/48"]
DISCARD = "(generic, 0x80060000, 0x0)"  # traffic-rate-bytes 0: discard (RFC 8955 7.3)


def traffic_rate_packets(pps: float) -> str:
    """BIRD's rendering of RFC 8955's traffic-rate-packets community for `pps`."""
    (rate,) = struct.unpack(">I", struct.pack(">f", pps))
    return f"(generic, 0x800c0000, 0x{rate:x})"


def relay_of(exabgp_pid: int) -> int:
    """The pid of ExaBGP's one child, the API relay."""
    children = Path(f"/proc/{exabgp_pid}/task/{exabgp_pid}/children").read_text().split()
    [relay_pid] = [int(pid) for pid in children]
    assert "relay.py" in Path(f"/proc/{relay_pid}/cmdline").read_bytes().decode()
    return relay_pid


def accepted(result: Accepted | Refusal) -> Accepted:
    assert isinstance(result, Accepted), result
    assert result.sent
    return result


async def test_session_established_and_peer_reported_up(bgp_lab: BgpLab, tmp_path: Path) -> None:
    async with running_engine(bgp_lab, tmp_path) as engine:
        assert bgp_lab.session_state() == "Established"
        [peer] = engine.peers()
        assert (peer.address, peer.state) == ("10.78.0.1", "up")
        assert await asyncio.to_thread(table, bgp_lab, FLOW4) == []


async def test_flowspec_v4_from_figures_reaches_bird_and_withdraw_removes(
    bgp_lab: BgpLab, tmp_path: Path
) -> None:
    amplification = RuleFigure(
        kind="signature", match="proto=17 sport=11211", proto=17, src_port=11211
    )
    syn_flood = RuleFigure(
        kind="rate_limit",
        match="syn",
        action="rate_limit",
        proto=6,
        dst_port=443,
        tcp_flags=0x02,
        tcp_flags_mask=0x12,
        rate_pps=1000,
    )
    async with running_engine(bgp_lab, tmp_path) as engine:
        rules = [flowspec_from_figure(f, NODE_V4) for f in (amplification, syn_flood)]
        ids = []
        for rule in rules:
            assert isinstance(rule, FlowSpecRule)
            ids.append(accepted(await engine.announce(rule, DECLARED)).live.id)

        routes = await wait_routes(bgp_lab, FLOW4, 2, "two flow4 routes")
        by_net = {r.net: r.attributes["BGP.ext_community"] for r in routes}
        syn = "flow4 { dst 203.0.113.7/32; proto 6; dport 443; tcp flags 0x2/0x2 && 0x0/0x10; }"
        assert by_net == {
            "flow4 { dst 203.0.113.7/32; proto 17; sport 11211; }": DISCARD,
            syn: traffic_rate_packets(1000.0),
        }

        assert await engine.withdraw(ids[0])
        assert not await engine.withdraw(ids[0])  # not in force any more
        routes = await wait_routes(bgp_lab, FLOW4, 1, "one flow4 route left")
        assert "proto 6" in routes[0].net
        assert [a.id for a in engine.live()] == [ids[1]]


async def test_flowspec_v6_with_packet_length_reaches_bird(bgp_lab: BgpLab, tmp_path: Path) -> None:
    rule = FlowSpecRule(
        destination=f"{NODE_V6}/128",
        protocol=17,
        src_port=53,
        packet_length_min=512,
        packet_length_max=1500,
    )
    async with running_engine(bgp_lab, tmp_path) as engine:
        live = accepted(await engine.announce(rule, DECLARED)).live
        [route] = await eventually(lambda: table(bgp_lab, FLOW6), "a flow6 route")
        assert route.net == (
            "flow6 { dst 2001:db8:5::7/128; next header 17; sport 53; length 512..1500; }"
        )
        assert route.attributes["BGP.ext_community"] == DISCARD
        assert await engine.withdraw(live.id)
        await eventually(lambda: table(bgp_lab, FLOW6) == [], "the flow6 route withdrawn")


async def test_rtbh_v4_and_v6_carry_the_community_and_withdraw(
    bgp_lab: BgpLab, tmp_path: Path
) -> None:
    async with running_engine(bgp_lab, tmp_path) as engine:
        ids = []
        for node in (NODE_V4, NODE_V6):
            ids.append(
                accepted(await engine.announce(rtbh_for(node, engine.config), DECLARED)).live.id
            )
        [v4] = await eventually(lambda: table(bgp_lab, UNICAST4), "the RTBH /32 in BIRD")
        [v6] = await eventually(lambda: table(bgp_lab, UNICAST6), "the RTBH /128 in BIRD")
        assert (v4.net, v4.attributes["BGP.community"]) == ("203.0.113.7/32", "(65535,666)")
        assert v4.attributes["BGP.next_hop"] == "192.0.2.1"
        assert (v6.net, v6.attributes["BGP.community"]) == ("2001:db8:5::7/128", "(65535,666)")
        assert v6.attributes["BGP.next_hop"] == "100::1"
        for announcement_id in ids:
            assert await engine.withdraw(announcement_id)
        await eventually(
            lambda: table(bgp_lab, UNICAST4) == [] and table(bgp_lab, UNICAST6) == [],
            "both RTBH routes withdrawn",
        )


async def test_ttl_expiry_withdraws(bgp_lab: BgpLab, tmp_path: Path) -> None:
    rule = FlowSpecRule(destination=f"{NODE_V4}/32", protocol=17, dst_port=123)
    async with running_engine(bgp_lab, tmp_path) as engine:
        # 4 s: long enough to see the rule in BIRD first even on a loaded machine
        short = accepted(await engine.announce(rule, DECLARED, ttl_s=4.0)).live
        kept = accepted(
            await engine.announce(rtbh_for(NODE_V4, engine.config), DECLARED, ttl_s=3600)
        ).live
        assert short.expires_at - short.announced_at == pytest.approx(4.0)
        await eventually(lambda: table(bgp_lab, FLOW4), "the short-lived rule in BIRD")
        await eventually(lambda: table(bgp_lab, FLOW4) == [], "the rule withdrawn at its TTL")
        assert [a.id for a in engine.live()] == [kept.id]
        assert len(table(bgp_lab, UNICAST4)) == 1  # the long-lived one stays


async def test_outside_declared_prefixes_refused_and_never_reaches_bird(
    bgp_lab: BgpLab, tmp_path: Path
) -> None:
    async with running_engine(bgp_lab, tmp_path) as engine:
        foreign = FlowSpecRule(destination="198.51.100.7/32", protocol=17, src_port=53)
        refused = await engine.announce(foreign, DECLARED)
        assert refused == Refusal("198.51.100.7 is outside the workspace's declared prefixes")
        refused_rtbh = await engine.announce(rtbh_for("2001:db8:6::1", engine.config), DECLARED)
        assert isinstance(refused_rtbh, Refusal)
        assert engine.live() == []
        # a later, allowed announcement arrives: commands go in order, so the refused ones
        # would have arrived before it
        ok = FlowSpecRule(destination=f"{NODE_V4}/32", protocol=17, src_port=53)
        accepted(await engine.announce(ok, DECLARED))
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the allowed rule")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 53; }"
        assert table(bgp_lab, UNICAST6) == []


async def test_cap_withdraws_the_oldest_first(bgp_lab: BgpLab, tmp_path: Path) -> None:
    async with running_engine(bgp_lab, tmp_path, max_announcements=2) as engine:
        results = []
        for port in (1001, 1002, 1003):
            rule = FlowSpecRule(destination=f"{NODE_V4}/32", protocol=17, dst_port=port)
            results.append(accepted(await engine.announce(rule, DECLARED)))
        first, second, third = (r.live.id for r in results)
        assert results[2].evicted == (first,)
        assert [a.id for a in engine.live()] == [second, third]
        routes = await wait_routes(
            bgp_lab, FLOW4, 2, "the two newest rules, the oldest withdrawn", without="1001"
        )
        assert sorted(r.net for r in routes) == [
            "flow4 { dst 203.0.113.7/32; proto 17; dport 1002; }",
            "flow4 { dst 203.0.113.7/32; proto 17; dport 1003; }",
        ]
        # the same match again replaces in place: nothing evicted, still two
        again = accepted(
            await engine.announce(
                FlowSpecRule(destination=f"{NODE_V4}/32", protocol=17, dst_port=1003), DECLARED
            )
        )
        assert (again.replaced, again.evicted) == (third, ())
        assert len(engine.live()) == 2


async def test_killed_speaker_comes_back_with_live_announcements(
    bgp_lab: BgpLab, tmp_path: Path
) -> None:
    async with running_engine(bgp_lab, tmp_path) as engine:
        flow = FlowSpecRule(destination=f"{NODE_V6}/128", protocol=17, src_port=389)
        accepted(await engine.announce(flow, DECLARED))
        accepted(await engine.announce(rtbh_for(NODE_V4, engine.config), DECLARED))
        expired = FlowSpecRule(destination=f"{NODE_V4}/32", protocol=17, src_port=19)
        short = accepted(await engine.announce(expired, DECLARED, ttl_s=1.0)).live.id
        await eventually(
            lambda: table(bgp_lab, FLOW6) and table(bgp_lab, UNICAST4), "announcements in BIRD"
        )
        # Expired in the engine, then gone from BIRD: an empty table alone could be read
        # before the short one even arrived, and a restart within its second re-announces
        # it (rightly: it was still in force).
        await eventually(
            lambda: all(a.id != short for a in engine.live()), "the short one to expire"
        )
        await eventually(lambda: table(bgp_lab, FLOW4) == [], "the short one withdrawn")

        pid = engine.speaker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # the session drops, and with it every route (BGP's fail-safe)
        await eventually(
            lambda: bgp_lab.session_state() != "Established" or table(bgp_lab, FLOW6) == [],
            "the session to drop",
        )
        await eventually(lambda: engine.speaker.restarts == 1, "the supervisor to restart")
        await eventually(lambda: bgp_lab.session_state() == "Established", "session back")
        [v6] = await eventually(lambda: table(bgp_lab, FLOW6), "the flow6 rule re-announced")
        [v4] = await eventually(lambda: table(bgp_lab, UNICAST4), "the RTBH re-announced")
        assert v6.net == "flow6 { dst 2001:db8:5::7/128; next header 17; sport 389; }"
        assert v4.attributes["BGP.community"] == "(65535,666)"
        assert engine.speaker.pid not in (None, pid)
        assert table(bgp_lab, FLOW4) == []  # the expired one is not announced again


async def test_killed_relay_restarts_exabgp_with_live_announcements(
    bgp_lab: BgpLab, tmp_path: Path
) -> None:
    async with running_engine(bgp_lab, tmp_path) as engine:
        flow = FlowSpecRule(destination=f"{NODE_V4}/32", protocol=17, src_port=1900)
        accepted(await engine.announce(flow, DECLARED))
        await eventually(lambda: table(bgp_lab, FLOW4), "the rule in BIRD")
        exabgp_pid = engine.speaker.pid
        assert exabgp_pid is not None
        relay_pid = relay_of(exabgp_pid)
        os.kill(relay_pid, signal.SIGKILL)
        # ExaBGP alone cannot be driven any more: the supervisor replaces it
        await eventually(lambda: engine.speaker.restarts == 1, "ExaBGP replaced")
        await eventually(lambda: engine.speaker.connected, "the new relay connected")
        assert engine.speaker.pid not in (None, exabgp_pid)
        await eventually(lambda: bgp_lab.session_state() == "Established", "session back")
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the rule re-announced")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 1900; }"


async def test_wedged_exabgp_is_replaced_and_the_announcement_arrives(
    bgp_lab: BgpLab, tmp_path: Path
) -> None:
    async with running_engine(bgp_lab, tmp_path) as engine:
        engine.speaker.command_timeout_s = 1.0
        exabgp_pid = engine.speaker.pid
        assert exabgp_pid is not None
        os.kill(exabgp_pid, signal.SIGSTOP)  # alive, but answers nothing
        try:
            rule = FlowSpecRule(destination=f"{NODE_V4}/32", protocol=17, src_port=5353)
            result = await engine.announce(rule, DECLARED)
            assert isinstance(result, Accepted)
            assert not result.sent  # no answer: kept, to go out with the next ExaBGP
            assert not engine.speaker.connected
        finally:
            os.kill(exabgp_pid, signal.SIGCONT)  # lets the pending SIGTERM end it
        await eventually(lambda: engine.speaker.restarts == 1, "ExaBGP replaced")
        assert engine.speaker.pid != exabgp_pid
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the rule announced")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 5353; }"

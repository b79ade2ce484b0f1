"""A peer reached over IPv6: the session comes up over the IPv6 transport and carries
FlowSpec for both families and the IPv6 RTBH route."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.bgp.announcements import FlowSpecRule
from control.bgp.builder import rtbh_for
from control.bgp.config import PeerConfig
from control.bgp.engine import Accepted
from lab.bird import (
    FLOW4,
    FLOW6,
    PROTOCOL,
    PROTOCOL_V6,
    ROUTER_AS,
    ROUTER_V6,
    SPEAKER_V6,
    UNICAST6,
    BgpLab,
)
from tests.bgp.daemons import running_engine, wait_routes

pytestmark = [pytest.mark.lab, pytest.mark.bgp]

DECLARED = ["203.0.113.0/24", "2001:db8:5::/48"]
V6_PEER = PeerConfig(address=ROUTER_V6, peer_as=ROUTER_AS, local_address=SPEAKER_V6)


async def test_session_over_ipv6_carries_flowspec_and_rtbh(bgp_lab: BgpLab, tmp_path: Path) -> None:
    async with running_engine(bgp_lab, tmp_path, protocol=PROTOCOL_V6, peers=(V6_PEER,)) as engine:
        assert bgp_lab.session_state(PROTOCOL) != "Established"  # only the IPv6 session
        [peer] = engine.peers()
        assert (peer.address, peer.state) == (ROUTER_V6, "up")
        for announcement in (
            FlowSpecRule(destination="2001:db8:5::7/128", protocol=58),
            FlowSpecRule(destination="203.0.113.7/32", protocol=1),
            rtbh_for("2001:db8:5::7", engine.config),
        ):
            result = await engine.announce(announcement, DECLARED)
            assert isinstance(result, Accepted) and result.sent, result
        [flow6] = await wait_routes(bgp_lab, FLOW6, 1, "the flow6 rule")
        [flow4] = await wait_routes(bgp_lab, FLOW4, 1, "the flow4 rule")
        [rtbh] = await wait_routes(bgp_lab, UNICAST6, 1, "the RTBH /128")
        assert (flow6.net, flow6.protocol) == (
            "flow6 { dst 2001:db8:5::7/128; next header 58; }",
            PROTOCOL_V6,
        )
        assert (flow4.net, flow4.protocol) == (
            "flow4 { dst 203.0.113.7/32; proto 1; }",
            PROTOCOL_V6,
        )
        assert (rtbh.net, rtbh.protocol) == ("2001:db8:5::7/128", PROTOCOL_V6)
        assert rtbh.attributes["BGP.community"] == "(65535,666)"

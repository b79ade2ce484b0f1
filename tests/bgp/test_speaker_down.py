"""Without a running ExaBGP the engine keeps what it was asked to announce (for the next
start) and the supervisor keeps trying, with back-off, instead of dying."""

from __future__ import annotations

from pathlib import Path

from control.bgp.announcements import FlowSpecRule
from control.bgp.config import decode_bgp_config
from control.bgp.engine import Accepted, BgpEngine
from tests.bgp.daemons import eventually

CONFIG = decode_bgp_config(
    'router_id = "192.0.2.10"\nlocal_as = 64513\nlisten = { address = "192.0.2.10" }\n'
    '[[peers]]\naddress = "192.0.2.1"\npeer_as = 64512\n'
)


async def test_missing_exabgp_binary_is_retried_and_announcements_kept(tmp_path: Path) -> None:
    engine = BgpEngine(
        CONFIG, tmp_path, exabgp=str(tmp_path / "no-such-exabgp"), backoff_initial_s=0.01
    )
    await engine.start()
    try:
        await eventually(lambda: engine.speaker.restarts >= 3, "three restart attempts")
        assert not engine.speaker.connected
        [peer] = engine.peers()
        assert peer.state == "down"
        assert "could not be started" in peer.reason
        rule = FlowSpecRule(destination="203.0.113.7/32", protocol=17, src_port=53)
        result = await engine.announce(rule, ["203.0.113.0/24"])
        assert isinstance(result, Accepted)
        assert not result.sent  # goes out when ExaBGP is up
        assert [a.announcement for a in engine.live()] == [rule]
    finally:
        await engine.stop()

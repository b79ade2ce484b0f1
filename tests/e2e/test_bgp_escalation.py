"""Automatic upstream escalation, for real: a lab flood at the victim, where `ftagent run`
reports to `ftcontrol serve --bgp-config` (its own ExaBGP peered with BIRD 2 in a
namespace of the test's own). The node's policy is `flowspec` and its declared uplink
small, so the flood's bps crosses the share: the FlowSpec rule shows up in BIRD's flow4
table (asked through birdc) with the node's address and the attack's protocol, and is
withdrawn after the incident resolves plus the hold-down. Then the agent's own verdict:
with an uplink declared far larger than the flood, frames the victim's kernel drops
(lab.unclaimed) make the agent report its link saturated, and that alone escalates.
"""

from __future__ import annotations

import calendar
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.bgp, pytest.mark.paced]

# memcached_amplification frames are 1,400 bytes: 10,000 pps is ~115 Mbit/s, far over
# 0.8 x 50 Mbit/s; the benign background (200 pps of small packets) is far under it.
FLOOD_PPS = 10_000
UPLINK_MBPS = 50.0
SHARE = 0.8
HOLD_DOWN_S = 2.0
DISCARD = "(generic, 0x80060000, 0x0)"  # traffic-rate-bytes 0: discard (RFC 8955 7.3)
AGENT_HTTP = "http://127.0.0.1:9477"  # the agent's /health, on the victim's loopback
# one lossy second makes the verdict (the defaults want 3): the test stays short
LINK = {"saturation_lost_pps": 500.0, "saturation_s": 1, "clear_s": 2}
DROPPED = "ftagent_dropped_packets_total"
LOST = "ftagent_link_rx_lost_packets_total{counter=rx_dropped}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_root()
    for tool in ("trafgen", "nsenter", "bird", "birdc", "exabgp"):
        require(shutil.which(tool) is not None, f"{tool} (netsniff-ng / util-linux / bird2)")
    from lab.escalation import EscalationStack
    from lab.trafgen import start_flood, stop_flood

    s = EscalationStack(
        Path(tmp_path_factory.mktemp("bgp-escalation")),
        node_name="edge-bgp",
        bgp_overrides={"escalate_uplink_share": SHARE, "withdraw_hold_down_s": HOLD_DOWN_S},
        agent_overrides={"link": LINK, "http": {"enabled": True, "port": 9477}},
    )
    try:
        s.start()
        benign = start_flood(s._lab(), "benign", packets=200 * 120, pps=200)
        try:
            yield s
        finally:
            stop_flood(benign)
    finally:
        s.close()


def test_a_flood_over_the_uplink_share_is_filtered_upstream_then_withdrawn(stack: Any) -> None:
    from lab.trafgen import start_flood, stop_flood

    lab = stack._lab()
    stack.wait_until(stack.session_established, 30.0, "BIRD's session with ftcontrol")
    peers = stack.get("/api/v1/bgp/peers")["peers"]
    assert [(p["address"], p["state"]) for p in peers] == [("10.78.0.1", "up")], peers
    node = stack.set_policy("flowspec", UPLINK_MBPS)
    assert (node["mitigation_policy"], node["uplink_mbps"]) == ("flowspec", UPLINK_MBPS)
    # The agent's first heartbeat: XDP is attached. Its baseline is still being learned,
    # so it detects on the static floors, which the flood is far above (no need to wait).
    stack.wait_until(lambda: stack.node()["last_seen"], 60.0, "the agent's first heartbeat")
    assert stack.flowspec_routes() == []  # the benign traffic escalates nothing
    before = stack.wait_until(
        lambda: (m := agent_metrics(stack)) and LOST in m and m, 10.0, "the agent's /metrics"
    )

    flood = start_flood(lab, "memcached_amplification", packets=FLOOD_PPS * 8, pps=FLOOD_PPS)
    try:
        routes = stack.wait_until(stack.flowspec_routes, 20.0, "the FlowSpec rule in BIRD")
        active = stack.incidents(status="active")
    finally:
        stop_flood(flood)
    [route] = routes
    assert route.net.startswith(f"flow4 {{ dst {lab.victim_v4}/32; proto 17;"), route.net
    assert "sport 11211" in route.net, route.net
    assert route.attributes["BGP.ext_community"] == DISCARD
    [incident] = active
    [live] = stack.get("/api/v1/bgp/announcements", in_force=True)["announcements"]
    assert live["kind"] == "flowspec" and live["trigger"] == "uplink_share", live
    assert live["destination"] == f"{lab.victim_v4}/32" and live["protocol"] == 17, live

    # the flood is over: the incident resolves, the rule stays for the hold-down, then goes
    stack.wait_until(
        lambda: (
            stack.get(f"/api/v1/incidents/{incident['uuid']}")["incident"]["status"] == "resolved"
        ),
        30.0,
        "the incident to resolve",
    )
    stack.wait_until(lambda: not stack.flowspec_routes(), 20.0, "the withdrawal in BIRD")
    # XDP dropped the flood, and none of what it dropped counts as a loss of the link
    after = agent_metrics(stack)
    dropped = f"{DROPPED}{{reason=drop_signature}}"
    assert after[dropped] - before[dropped] > 1000, (before[dropped], after[dropped])
    assert after[LOST] == before[LOST], (before[LOST], after[LOST])
    shown = stack.get(f"/api/v1/incidents/{incident['uuid']}")["incident"]
    [gone] = shown["announcements"]
    assert gone["id"] == live["id"] and gone["withdraw_reason"] == "resolved", gone
    # withdrawn a hold-down after the end, not at once (the API shows whole seconds)
    assert seconds(gone["withdrawn_at"]) - seconds(shown["ended_at"]) >= HOLD_DOWN_S - 1, gone


def seconds(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def agent_metrics(stack: Any) -> dict[str, float]:
    """The agent's /metrics samples, keyed `name` or `name{label=value}`."""
    from prometheus_client.parser import text_string_to_metric_families

    lab = stack._lab()
    with lab.inside(lab.victim_ns):
        text = httpx.get(f"{AGENT_HTTP}/metrics", timeout=5).raise_for_status().text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = "".join(f"{{{k}={v}}}" for k, v in sample.labels.items())
            out[f"{sample.name}{labels}"] = sample.value
    return out


def agent_health(stack: Any) -> dict[str, Any]:
    lab = stack._lab()
    with lab.inside(lab.victim_ns):
        body: dict[str, Any] = httpx.get(f"{AGENT_HTTP}/health", timeout=5).json()
    return body


def test_the_agents_link_saturated_verdict_alone_escalates(stack: Any) -> None:
    from ftagent.commands.status import render
    from ftagent.local.views import Health
    from lab.trafgen import start_flood, stop_flood
    from lab.unclaimed import UnclaimedFrames

    lab = stack._lab()
    stack.set_policy("flowspec", 100_000.0)  # the flood is ~0.1 % of it: no share trigger
    stack.wait_until(
        lambda: not stack.flowspec_routes() and not stack.incidents(status="active"),
        30.0,
        "no rule in BIRD and no active incident",
    )
    assert agent_health(stack)["link"]["saturated"] is False
    frames = UnclaimedFrames(lab)
    stop = threading.Event()

    def losses() -> None:  # 2,000 frames/s for at most 15 s: bounded
        for _ in range(150):
            if stop.is_set():
                return
            frames.send(200)
            time.sleep(0.1)

    sender = threading.Thread(target=losses, name="unclaimed-frames")
    sender.start()
    flood = start_flood(lab, "memcached_amplification", packets=FLOOD_PPS * 10, pps=FLOOD_PPS)
    try:
        routes = stack.wait_until(stack.flowspec_routes, 20.0, "the FlowSpec rule in BIRD")
        health = agent_health(stack)
        gauges = agent_metrics(stack)
    finally:
        stop_flood(flood)
        stop.set()
        sender.join(10)
        frames.close()
    [route] = routes
    assert route.net.startswith(f"flow4 {{ dst {lab.victim_v4}/32; proto 17;"), route.net
    [live] = stack.get("/api/v1/bgp/announcements", in_force=True)["announcements"]
    assert live["trigger"] == "link_saturated", live
    # what the agent showed locally meanwhile: /health, /metrics and `ftagent status`
    link = health["link"]
    assert link["saturated"] is True and link["rx_lost_pps"] >= LINK["saturation_lost_pps"], link
    assert gauges["ftagent_link_saturated"] == 1.0
    assert gauges["ftagent_link_rx_lost_pps"] >= LINK["saturation_lost_pps"]
    assert f"SATURATED since {link['saturated_since']}" in render(msgspec.convert(health, Health))
    stack.wait_until(lambda: not stack.flowspec_routes(), 30.0, "the withdrawal in BIRD")

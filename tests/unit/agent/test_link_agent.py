"""The real agent on the lab's victim veth reports its link's losses and the saturation
verdict in its one-second points, /health and /metrics; XDP's own drops are not losses."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from ftagent.commands.status import render
from ftagent.datapath import RuleSpec
from ftagent.http_local import LocalHttp
from ftagent.link_losses import LinkCounters
from ftcontract.agent_api import MetricPoint
from lab.unclaimed import UnclaimedFrames
from tests.capability import require, require_root
from tests.e2e.agent_harness import RunningAgent, lab_config

pytestmark = [pytest.mark.lab, pytest.mark.kernel]

LINK = """
[link]
saturation_lost_pps = 500.0
saturation_s = 2
clear_s = 1
"""


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    require_root()
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    from lab.netns import Lab

    state = tmp_path_factory.mktemp("agent-state")
    with Lab.create() as lab:
        ra = RunningAgent(lab, lab_config(lab.victim_if, state, LINK)).start()
        try:
            yield ra
        finally:
            ra.stop()
    assert ra.error is None, f"agent loop failed: {ra.error!r}"


def points(ra: RunningAgent, since_ns: int) -> list[MetricPoint]:
    return [e.data for e in ra.sink.of("metrics", since_ns)]


def test_lost_frames_make_the_link_saturated_in_points_health_and_metrics(
    running: RunningAgent,
) -> None:
    ra = running
    agent = ra.agent
    assert agent is not None
    frames = UnclaimedFrames(ra.lab)
    stop = threading.Event()

    def steady_losses() -> None:  # 2,000 frames/s for at most 10 s: bounded
        for _ in range(100):
            if stop.is_set():
                return
            frames.send(200)
            time.sleep(0.1)

    with ra.lab.inside(ra.lab.victim_ns):
        http = LocalHttp(agent, "127.0.0.1", 0)
    http.start()
    sender = threading.Thread(target=steady_losses, name="unclaimed-frames")
    t0 = time.monotonic_ns()
    sender.start()
    try:
        ra.wait_for(lambda: any(p.link_saturated for p in points(ra, t0)), 9, "a saturated point")
        # the snapshot /health serves is taken just after the point is handed over
        ra.wait_for(lambda: agent.health()["link"]["saturated"], 5, "/health to say saturated")
        health = agent.health()["link"]
        shown = render(agent.health())
        with ra.lab.inside(ra.lab.victim_ns):
            metrics = httpx.get(f"http://127.0.0.1:{http.port}/metrics", timeout=5).text
    finally:
        stop.set()
        sender.join(10)
        frames.close()
        http.close()
    saturated = next(p for p in points(ra, t0) if p.link_saturated)
    assert saturated.rx_lost_pps >= 500.0
    # the verdict needs two lossy seconds: the first lossy point is not saturated yet
    lossy = [p for p in points(ra, t0) if p.rx_lost_pps >= 500.0]
    assert not lossy[0].link_saturated
    assert health["readable"] is True and health["saturated"] is True
    assert health["saturated_since"] is not None and health["rx_dropped"] >= 2000
    assert f"SATURATED since {health['saturated_since']}" in shown  # ftagent status
    assert "ftagent_link_saturated 1.0" in metrics
    assert 'ftagent_link_rx_lost_packets_total{counter="rx_dropped"}' in metrics
    t1 = time.monotonic_ns()
    ra.wait_for(
        lambda: any(not p.link_saturated for p in points(ra, t1)), 10, "the verdict to clear"
    )
    ra.wait_for(lambda: not agent.health()["link"]["saturated"], 5, "/health to clear")


def test_what_xdp_drops_is_not_counted_as_lost(running: RunningAgent) -> None:
    ra = running
    assert ra.agent is not None
    rule = RuleSpec(kind="signature", proto=17, dst_port=9)
    with ra.lab.inside(ra.lab.victim_ns):
        counters = LinkCounters(ra.lab.victim_if)
    with ra.lab.inside(ra.lab.attacker_ns):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with ra.agent.lock:
        ra.dp.add_rule(rule, 30.0)
    try:
        before_losses = counters.read()
        dropped_before = ra.agent.scrape_counters().verdicts["drop_signature"]
        for _ in range(1000):  # 1,000 datagrams: under the detector's floors
            udp.sendto(b"x" * 64, (ra.lab.victim_v4, 9))
        ra.wait_for(
            lambda: (
                ra.agent is not None
                and ra.agent.scrape_counters().verdicts["drop_signature"] >= dropped_before + 1000
            ),
            5,
            "XDP to drop the datagrams",
        )
        assert counters.read().total == before_losses.total
    finally:
        with ra.agent.lock:
            ra.dp.remove_rule(rule)
        udp.close()
        counters.close()

"""The fleet watcher against a stand-in HTTP server on loopback that serves the contract's
FleetOrders with the long poll's semantics (tests/unit/report/loopback.py): orders handed
to the loop, a moved config fetched at once, back-off and one log line per outage, a 404
from an older control plane, and the metrics reply's hint.

The watcher against the REAL control plane (an order from its fleet engine, an operator
block) is test_fleet_watch_served.py. The stand-in stays here for what the real server
cannot be made to do on demand: set versions and answers directly (the exact after/wait
of each poll), answer 404 (a control plane from before the fleet release), fail with a
503, lose an answer (a held poll never woken), send an order with a short TTL, and stop
and come back on the same port within a test's second."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ftagent.config import Config, decode
from ftagent.events import AgentStatus
from ftagent.orders.fleet import FleetInbox
from ftagent.report.client import AgentClient
from ftagent.report.fleet_watch import FleetWatcher, WatchTimings
from ftagent.report.sink import ControlSink
from ftcontract import agent_api
from tests.unit.report.loopback import LoopbackControlPlane

NODE = "0b7c6a52-3d1e-4f7e-9a61-2c3d4e5f6a7b"
KEY = "cd" * 32
INC = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
FAST = WatchTimings(wait_s=30, retry_min_s=0.1, retry_max_s=0.4, absent_retry_s=600.0)

DNS = agent_api.FleetOrder(
    incident_uuid=INC,
    family="dns_amplification",
    vectors=[agent_api.FleetVector(family="dns_amplification", group="udp", amp_port=53)],
    ttl_s=60.0,
    group="203.0.113.0/24",
)


def query(r: object) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(r.path).query).items()}  # type: ignore[attr-defined]


@pytest.fixture
def watch(plane: LoopbackControlPlane) -> Iterator[object]:
    made: list[FleetWatcher] = []

    def make(
        timings: WatchTimings = FAST,
    ) -> tuple[FleetWatcher, FleetInbox, list[int]]:
        inbox = FleetInbox()
        fetches: list[int] = []
        client = AgentClient(plane.url, KEY, NODE, connect_timeout_s=0.3, timeout_s=1.0)
        w = FleetWatcher(client, inbox.put, lambda: fetches.append(1), timings)
        made.append(w)
        w.start()
        return w, inbox, fetches

    yield make
    for w in made:
        w.stop()


def test_orders_arrive_at_once_then_each_change_wakes_the_held_poll(plane, watch) -> None:
    plane.set_fleet(agent_api.FleetOrders(version=3, config_version=1))
    w, inbox, _ = watch()
    assert plane.wait_for(lambda: w.version == 3)
    first = inbox.take()
    assert first is not None and first.orders.orders == []
    # The first poll asks for an answer at once; the next one waits (held by the server).
    assert plane.wait_for(lambda: len(plane.fleet_polls()) >= 1)
    assert query(plane.fleet_polls()[0]) == {"after": "0", "wait": "0"}
    time.sleep(0.2)  # the long poll is held now (30 s)
    plane.set_fleet(agent_api.FleetOrders(version=4, orders=[DNS], config_version=1))
    # Answered when the version moved, long before the poll's 30 s.
    assert plane.wait_for(lambda: w.version == 4, timeout=5.0)
    got = inbox.take()
    assert got is not None and [o.incident_uuid for o in got.orders.orders] == [INC]
    assert got.orders.orders[0].vectors[0].amp_port == 53
    assert query(plane.fleet_polls()[1]) == {"after": "3", "wait": "30"}
    assert w.state == "watching"


def test_a_moved_config_or_waiting_commands_fetch_the_config_now(plane, watch) -> None:
    plane.set_fleet(agent_api.FleetOrders(version=1, config_version=7))
    w, _, fetches = watch()
    assert plane.wait_for(lambda: len(fetches) == 1)  # first answer: a config not seen
    plane.set_fleet(agent_api.FleetOrders(version=2, config_version=7))
    assert plane.wait_for(lambda: w.version == 2)
    assert len(fetches) == 1  # orders only: no fetch
    plane.set_fleet(agent_api.FleetOrders(version=3, config_version=7, pending_commands=1))
    assert plane.wait_for(lambda: len(fetches) == 2)
    plane.set_fleet(agent_api.FleetOrders(version=4, config_version=8))
    assert plane.wait_for(lambda: len(fetches) == 3)


def test_an_older_control_plane_without_fleet_is_left_alone_quietly(
    plane, watch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ftagent.fleet")
    w, inbox, _ = watch()  # plane.fleet is None: /fleet is a 404
    assert plane.wait_for(lambda: w.state == "absent")
    time.sleep(1.0)
    assert len(plane.fleet_polls()) == 1  # asked once; the next in 10 minutes
    notes = [r for r in caplog.records if "no fleet orders" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert inbox.take() is None
    # A metrics reply with a fleet version: the control plane was upgraded: ask now.
    plane.set_fleet(agent_api.FleetOrders(version=5))
    w.hint(5)
    assert plane.wait_for(lambda: w.version == 5 and w.state == "watching")


def test_an_outage_backs_off_logs_once_and_recovers(
    plane, watch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ftagent.fleet")
    plane.set_fleet(agent_api.FleetOrders(version=1))
    w, inbox, _ = watch(
        WatchTimings(wait_s=1, retry_min_s=0.1, retry_max_s=0.4, absent_retry_s=600.0)
    )
    assert plane.wait_for(lambda: w.version == 1)
    plane.stop()  # connections refused
    assert plane.wait_for(lambda: w.state == "backing_off", timeout=5.0)
    time.sleep(2.0)
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per retry
    plane.set_fleet(agent_api.FleetOrders(version=2, orders=[DNS]))
    inbox.take()
    before = len(plane.fleet_polls())
    plane.start()  # same port
    assert plane.wait_for(lambda: w.version == 2 and w.state == "watching", timeout=5.0)
    got = inbox.take()
    assert got is not None and got.orders.orders == [DNS]
    # After the outage the first poll asks for an answer at once.
    assert query(plane.fleet_polls()[before])["wait"] == "0"
    assert any("watching fleet orders" in r.getMessage() for r in caplog.records)


def test_back_off_never_spins(watch) -> None:
    """Nothing listens on the port: the retries slow down to retry_max_s."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = FleetInbox()
    tries: list[float] = []

    class Counting(AgentClient):
        def fleet(self, after: int, wait_s: int) -> agent_api.FleetOrders:
            tries.append(time.monotonic())
            return super().fleet(after, wait_s)

    client = Counting(f"http://127.0.0.1:{port}", KEY, NODE, connect_timeout_s=0.3)
    w = FleetWatcher(client, inbox.put, lambda: None, FAST)
    w.start()
    time.sleep(2.0)
    w.stop()
    # 0.1 + 0.2 + 0.4 + 0.4 ...: a handful, not thousands
    assert 3 <= len(tries) <= 10


def test_the_metrics_reply_version_wakes_a_sleeping_watcher(plane, watch) -> None:
    plane.set_fleet(agent_api.FleetOrders(version=1))
    slow = WatchTimings(wait_s=1, retry_min_s=30.0, retry_max_s=30.0, absent_retry_s=600.0)
    w, _inbox, _ = watch(slow)
    assert plane.wait_for(lambda: w.version == 1)
    plane.behaviour.status_for["fleet?after=1&wait=1"] = 503
    assert plane.wait_for(lambda: w.state == "backing_off", timeout=5.0)  # for 30 s
    plane.behaviour.status_for.clear()
    plane.set_fleet(agent_api.FleetOrders(version=2, orders=[DNS]))
    w.hint(1)  # the same version: nothing to do
    time.sleep(0.3)
    assert w.version == 1
    w.hint(2)  # the control plane is at 2: re-poll now, not in 30 s
    assert plane.wait_for(lambda: w.version == 2, timeout=3.0)


def sink_config(plane: LoopbackControlPlane, tmp_path: Path, watch: bool = True) -> Config:
    return decode(
        f"""
[agent]
interface = "veth-t"
state_dir = "{tmp_path}"
[control]
server = "{plane.url}"
api_key = "{KEY}"
node_uuid = "{NODE}"
heartbeat_interval_s = 30
config_interval_s = 60
fleet_watch = {str(watch).lower()}
fleet_wait_s = 30
"""
    )


STATUS = AgentStatus(
    interface="veth-t",
    xdp_mode="generic",
    baseline_state="learning",
    attack=False,
    pps=0.0,
    rules_active=0,
    mitigation_mode="on",
)


def test_a_block_command_reaches_the_loop_through_the_fleet_path(
    plane: LoopbackControlPlane, tmp_path: Path
) -> None:
    """Config fetched every 60 s, heartbeat every 30 s: the command arrives because the
    fleet answer says one is pending, not because a timer fired."""
    plane.set_fleet(agent_api.FleetOrders(version=1, config_version=1))
    sink = ControlSink(sink_config(plane, tmp_path))
    sink.start(STATUS)
    try:
        assert plane.wait_for(lambda: sink.watcher is not None and sink.watcher.version == 1)
        first = sink.fleet_inbox.take()  # what the agent loop takes every window
        assert first is not None and first.orders.version == 1
        assert plane.wait_for(lambda: len(plane.of("config")) >= 1)
        sink.poll_control()
        fetched = len(plane.of("config"))
        plane.behaviour.config = {
            "config_version": 2,
            "thresholds": {},
            "commands": [{"id": 9, "action": "block", "target": "198.51.100.7", "ttl_s": 60}],
        }
        plane.set_fleet(agent_api.FleetOrders(version=2, config_version=2, pending_commands=1))
        got: list[agent_api.AgentConfig] = []

        def command_arrived() -> bool:
            control = sink.poll_control()
            if control is not None and control.commands:
                got.append(control)
            return bool(got)

        assert plane.wait_for(command_arrived, timeout=5.0)
        assert len(plane.of("config")) > fetched
        assert [c.target for c in got[0].commands] == ["198.51.100.7"]
    finally:
        sink.close()


def test_metrics_replies_hint_the_watcher_and_fleet_watch_off_never_polls(
    plane: LoopbackControlPlane, tmp_path: Path
) -> None:
    plane.set_fleet(agent_api.FleetOrders(version=1))
    sink = ControlSink(sink_config(plane, tmp_path, watch=False))
    sink.start(STATUS)
    try:
        sink.metrics_second(agent_api.MetricPoint(ts=1.0, pps=1.0, bps=1.0), STATUS)
        assert plane.wait_for(lambda: len(plane.of("metrics")) == 1)
        assert sink.watcher is None and plane.fleet_polls() == []
    finally:
        sink.close()
    sink = ControlSink(sink_config(plane, tmp_path))
    sink.start(STATUS)
    try:
        assert sink.watcher is not None
        w = sink.watcher
        assert plane.wait_for(lambda: w.version == 1)
        seen: list[int] = []
        w_hint = w.hint

        def hint(version: int) -> None:
            seen.append(version)
            w_hint(version)

        sink.reporter.on_fleet_version = hint
        sink.metrics_second(agent_api.MetricPoint(ts=2.0, pps=1.0, bps=1.0), STATUS)
        assert plane.wait_for(lambda: seen == [1])
    finally:
        sink.close()


def test_a_poll_never_outlasts_a_third_of_the_shortest_order_ttl(plane, watch) -> None:
    short = agent_api.FleetOrder(
        incident_uuid=INC, family="udp_flood", ttl_s=9.0,
        vectors=[agent_api.FleetVector(family="udp_flood", group="udp")],
    )  # fmt: skip
    plane.set_fleet(agent_api.FleetOrders(version=1, orders=[short]))
    w, _, _ = watch()  # fleet_wait_s 30
    assert plane.wait_for(lambda: w.version == 1)
    plane.set_fleet(agent_api.FleetOrders(version=2, orders=[short]))
    assert plane.wait_for(lambda: w.version == 2)
    assert query(plane.fleet_polls()[1]) == {"after": "1", "wait": "3"}


def test_a_hint_beside_a_stuck_poll_asks_again_at_once(plane, watch) -> None:
    """The held poll is not woken (as if a proxy lost the answer): the metrics reply's
    version makes the watcher ask beside it."""
    plane.set_fleet(agent_api.FleetOrders(version=1))
    w, inbox, _ = watch()
    assert plane.wait_for(lambda: w.version == 1)
    inbox.take()
    time.sleep(1.3)  # the next poll is held (30 s) for over a second now
    plane.fleet = agent_api.FleetOrders(version=2, orders=[DNS])  # no wake-up
    w.hint(2)
    assert plane.wait_for(lambda: w.version == 2, timeout=3.0)
    got = inbox.take()
    assert got is not None and got.orders.orders == [DNS]

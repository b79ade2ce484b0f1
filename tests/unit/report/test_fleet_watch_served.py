"""The agent's fleet watcher long-polling the REAL control plane (`ftcontrol serve`, a
process on a loopback port, with its fleet engine): a fleet incident's order and a queued
operator block reach the watcher through the held poll, each answered as soon as the
control plane's version moves (the poll asks to be held 30 s).

The stand-in server of test_fleet_watch.py stays for what the real one cannot be made
to do: answer 404 (a control plane from before the fleet release), fail with a 503 on
demand, lose an answer (a held poll never woken), send an order with a short TTL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from ftagent.orders.fleet import FleetAnswer, FleetInbox
from ftagent.report.client import AgentClient
from ftagent.report.fleet_watch import FleetWatcher, WatchTimings
from ftcontract import agent_api
from tests.api.served import Node, Served, served_control

WAIT = WatchTimings(wait_s=30, retry_min_s=0.1, retry_max_s=0.4, absent_retry_s=600.0)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with served_control(tmp_path, isolated=False) as srv:
        srv.start()
        yield srv


def dns_second(ts: float) -> agent_api.MetricPoint:
    """One node's second of DNS answers from port 53: above the fleet's 3,000 pps floor
    per amplification port (the sum of this one-node group), below its burst."""
    pps = 6_000.0
    return agent_api.MetricPoint(
        ts=ts, pps=pps, bps=pps * 8 * 1200, protocols={"udp": pps}, udp_ports={"53": pps}
    )


def test_the_watcher_gets_the_fleet_order_and_a_block_from_the_real_control_plane(
    served: Served,
) -> None:
    ws = served.workspace("acme")
    node: Node = served.node(ws, "edge-1")
    inbox = FleetInbox()
    answers: list[agent_api.FleetOrders] = []
    fetches: list[float] = []

    def deliver(orders: agent_api.FleetOrders) -> None:
        answers.append(orders)
        inbox.put(orders)

    client = AgentClient(served.base, node.api_key, node.uuid, connect_timeout_s=1.0)
    watcher = FleetWatcher(client, deliver, lambda: fetches.append(time.monotonic()), WAIT)
    watcher.start()
    try:
        assert wait_for(lambda: watcher.version is not None and watcher.state == "watching")
        first: FleetAnswer | None = inbox.take()
        assert first is not None and first.orders.orders == []
        time.sleep(0.5)  # the next poll is in, held by the server (30 s)
        held = len(answers)

        # a second of the group's sum above its threshold: the engine opens the fleet
        # incident and the held poll is answered with its order
        second = float(int(time.time()) - 1)
        r = served.request(
            "POST",
            "/api/v1/agent/metrics",
            content=msgspec.json.encode(agent_api.MetricsBatch(points=[dns_second(second)])),
            headers={**node.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
        assert wait_for(lambda: any(a.orders for a in answers[held:]))
        (order,) = next(a for a in answers[held:] if a.orders).orders
        assert order.family == "dns_amplification" and order.group == "workspace"
        assert [v.amp_port for v in order.vectors] == [53]
        listed = served.request(
            "GET", "/api/v1/incidents", params={"scope": "fleet"}, headers=ws.headers
        )
        assert [i["uuid"] for i in listed.json()["incidents"]] == [order.incident_uuid]

        # an operator's block command: the held poll is answered with it pending, and
        # the watcher has the agent fetch its config at once
        time.sleep(0.3)
        before, fetched = len(answers), len(fetches)
        r = served.request(
            "POST",
            f"/api/v1/nodes/{node.uuid}/rules",
            json={"target": "198.51.100.7"},
            headers=ws.headers,
        )
        assert r.status_code == 201, r.text
        assert wait_for(lambda: any(a.pending_commands for a in answers[before:]))
        assert wait_for(lambda: len(fetches) > fetched)
        pending = next(a for a in answers[before:] if a.pending_commands)
        assert [o.incident_uuid for o in pending.orders] == [order.incident_uuid]
    finally:
        watcher.stop()
        client.close()

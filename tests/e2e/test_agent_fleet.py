"""The agent loop with fleet orders: the real loop on a real XDP attachment in a lab
namespace takes an order from its inbox within a window or so, puts the rule in the
kernel, reports it in every one-second point (`fleet_rules`), shows it in /health and to
`ftagent rules`, learns no baseline while it holds the order, and removes the rule when
an answer no longer lists it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftagent.commands.rules import format_rules
from ftagent.orders import fleet_state
from ftagent.orders.fleet import FleetInbox
from ftcontract import agent_api
from lab.agent_harness import RunningAgent, lab_config
from lab.netns import Lab
from tests.capability import require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

INC = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
DNS_ORDER = agent_api.FleetOrder(
    incident_uuid=INC,
    family="dns_amplification",
    vectors=[agent_api.FleetVector(family="dns_amplification", group="udp", amp_port=53)],
    ttl_s=60.0,
    group="203.0.113.0/24",
)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningAgent]:
    require_root()
    with Lab.create() as lab:
        ra = RunningAgent(lab, lab_config(lab.victim_if, tmp_path)).start()
        try:
            yield ra
        finally:
            ra.stop()


def points(ra: RunningAgent, since_ns: int = 0) -> list[agent_api.MetricPoint]:
    return [e.data for e in ra.sink.of("metrics", since_ns)]


def test_an_order_goes_into_the_kernel_the_points_and_the_views_then_out(
    running: RunningAgent, tmp_path: Path
) -> None:
    ra = running
    agent = ra.agent
    assert agent is not None
    inbox = FleetInbox()
    agent.fleet_inbox = inbox
    ra.wait_for(lambda: len(points(ra)) >= 2, 10.0, "two points")
    # Whole wall-clock seconds, one after the other.
    ts = [p.ts for p in points(ra)]
    assert all(t == int(t) for t in ts) and ts == sorted(set(ts))
    learned = agent.baseline.samples
    assert learned >= 1

    inbox.put(agent_api.FleetOrders(version=1, orders=[DNS_ORDER]))

    def in_kernel() -> bool:
        return any(r.spec.src_port == 53 for r in agent.scrape_rules())

    ra.wait_for(in_kernel, 5.0, "the order's rule in the kernel")
    (rule,) = agent.scrape_rules()
    assert (rule.spec.proto, rule.spec.spare) == (17, "connected")
    assert 50.0 < (rule.expires_ns - time.monotonic_ns()) / 1e9 <= 60.0  # the order's TTL
    since = time.monotonic_ns()
    ra.wait_for(lambda: len(points(ra, since)) >= 3, 10.0, "three points under the order")
    reports = [p.fleet_rules for p in points(ra, since)]
    assert all([r.incident_uuid for r in rep] == [INC] for rep in reports)
    assert reports[-1][0].rules[0].src_port == 53
    assert reports[-1][0].in_force_since is not None
    # The baseline learns nothing while the order is held.
    assert agent.baseline.samples <= learned + 1  # the second in progress at the order

    health = agent.snapshot().health
    (shown,) = health.fleet_orders
    assert (shown.incident_uuid, shown.family, shown.group) == (
        INC, "dns_amplification", "203.0.113.0/24",
    )  # fmt: skip
    assert shown.rules == ("signature proto=17 sport=53 spare=connected",)
    assert 0 < shown.expires_in_s <= 60.0 and shown.in_force_since is not None
    assert health.rules_active == 1 and len(health.rules) == 1  # old keys kept
    listed = fleet_state.load(tmp_path / fleet_state.FILE)
    table = format_rules(agent.scrape_rules(), time.monotonic_ns(), listed)
    assert f"fleet {INC}" in table.splitlines()[1]

    # The fleet incident ended: the next answer lists nothing.
    inbox.put(agent_api.FleetOrders(version=2))
    ra.wait_for(lambda: not agent.scrape_rules(), 5.0, "the rule removed")
    ra.wait_for(lambda: agent.snapshot().health.fleet_orders == (), 5.0, "/health updated")
    since = time.monotonic_ns()
    ra.wait_for(lambda: len(points(ra, since)) >= 2, 10.0, "two points after")
    assert all(p.fleet_rules == [] for p in points(ra, since)[1:])
    ra.wait_for(lambda: agent.baseline.samples > learned + 1, 10.0, "learning again")
    assert fleet_state.load(tmp_path / fleet_state.FILE).rules == []

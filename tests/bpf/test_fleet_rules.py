"""A fleet order's rules in the real kernel: planned and installed by the agent's
FleetRules, they drop the spread attack's packets while sparing the node's own traffic
(answers to its own DNS queries), are counted per rule in the report, last as long as
answers renew them, and stop dropping on their own when no answer renews them within the
TTL (fail open: the kernel ignores an expired rule, whatever the agent does).

Frames through BPF_PROG_TEST_RUN from inside a lab namespace holding the node's sockets
(a test run looks sockets up in the namespace of the calling thread)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ftagent.config import decode
from ftagent.datapath import RuleSpec
from ftagent.mitigate.guard import SocketGuard, udp_port_bound
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.protection import Protection
from ftagent.orders.fleet import FleetAnswer, FleetRules
from ftcontract import agent_api
from lab.bpf_testrun import XDP_DROP, XDP_PASS
from lab.netns import Lab

from .conftest import Prog

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
INC = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
TTL_S = 3.0
DNS_ORDER = agent_api.FleetOrder(
    incident_uuid=INC,
    family="dns_amplification",
    vectors=[agent_api.FleetVector(family="dns_amplification", group="udp", amp_port=53)],
    ttl_s=TTL_S,
    group="203.0.113.0/24",
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.create() as made:
        yield made


def frame(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    return bytes(
        ETH / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / Raw(b"a" * 400)
    )


def answer(version: int, *orders: agent_api.FleetOrder) -> FleetAnswer:
    return FleetAnswer(agent_api.FleetOrders(version=version, orders=list(orders)), 0.0)


def test_a_fleet_order_drops_the_attack_spares_the_node_and_fails_open_unrenewed(
    prog: Prog, lab: Lab
) -> None:
    cfg = decode("[mitigation]\nrule_ttl_s = 300\n").mitigation
    protection = Protection([], [], [], [])
    # the rule tables are all the mitigator uses (DatapathMaps has no attachment)
    maps: Any = prog.maps
    mitigator = Mitigator(maps, cfg, protection.protected)  # real monotonic clock
    fleet = FleetRules(
        mitigator,
        cfg,
        protection.protected,
        lambda metric: 1000,
        SocketGuard(True, "on", udp_port_bound),
        threading.RLock(),
    )
    node, resolver, reflector = lab.victim_v4, lab.attacker_v4, "198.51.100.53"
    with lab.inside(lab.victim_ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.connect((resolver, 53))  # the node's own resolver client
        own = (node, client.getsockname()[1])
        attack = frame((reflector, 53), (node, 40000))
        own_answer = frame((resolver, 53), own)

        fleet.take(answer(1, DNS_ORDER), lambda: {"amp_53_pps": 900.0}, lambda: [])
        (rule,) = prog.maps.list_rules()
        assert rule.spec == RuleSpec("signature", proto=17, src_port=53, spare="connected")
        retval, d = prog.run(attack, repeat=50)
        assert retval == XDP_DROP and d.verdicts == {"drop_signature": 50}
        retval, d = prog.run(own_answer, repeat=3)
        assert retval == XDP_PASS and d.verdicts == {"passed": 3}
        kernel = {r.spec: r for r in prog.maps.list_rules()}
        (report,) = fleet.reports(kernel)
        (figure,) = report.rules
        assert (report.incident_uuid, figure.dropped_packets, figure.spared_packets) == (
            INC,
            50,
            3,
        )
        assert report.in_force_since is not None

        # Renewed by an answer listing the order half-way through its TTL ...
        time.sleep(TTL_S / 2)
        fleet.take(answer(2, DNS_ORDER), lambda: {}, lambda: [])
        renewed = time.monotonic()
        time.sleep(TTL_S * 2 / 3)  # past the first expiry, before the renewed one
        assert time.monotonic() < renewed + TTL_S
        retval, d = prog.run(attack, repeat=5)
        assert retval == XDP_DROP and d.verdicts == {"drop_signature": 5}

        # ... then no answer any more (the control plane is gone): the kernel stops
        # applying the rule at its expiry, before the agent does anything.
        while time.monotonic() < renewed + TTL_S + 0.2:
            time.sleep(0.1)
        assert [r.spec for r in prog.maps.list_rules()] == [rule.spec]  # still in the map
        retval, d = prog.run(attack, repeat=5)
        assert retval == XDP_PASS and d.verdicts == {"passed": 5}

        # The agent's next window forgets the order and clears the map.
        fleet.take(None, lambda: {}, lambda: [])
        assert prog.maps.list_rules() == [] and not fleet.held


def test_a_withdrawn_order_stops_dropping_at_once(prog: Prog, lab: Lab) -> None:
    cfg = decode("[mitigation]\nrule_ttl_s = 300\n").mitigation
    protection = Protection([], [], [], [])
    maps: Any = prog.maps
    mitigator = Mitigator(maps, cfg, protection.protected)
    fleet = FleetRules(
        mitigator,
        cfg,
        protection.protected,
        lambda metric: 1000,
        SocketGuard(True, "on", udp_port_bound),
        threading.RLock(),
    )
    attack = frame(("198.51.100.53", 53), (lab.victim_v4, 40000))
    with lab.inside(lab.victim_ns):
        fleet.take(answer(1, DNS_ORDER), lambda: {"amp_53_pps": 900.0}, lambda: [])
        retval, _ = prog.run(attack, repeat=5)
        assert retval == XDP_DROP
        fleet.take(answer(2), lambda: {}, lambda: [])  # the fleet incident ended
        retval, d = prog.run(attack, repeat=5)
        assert retval == XDP_PASS and d.verdicts == {"passed": 5}
    assert prog.maps.list_rules() == []

"""Operator block/unblock from the control plane: refused for protected targets by the same
`Protection` the mitigator plans with; applied to the kernel's rule maps otherwise."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from ftagent.config import MitigationConfig
from ftagent.evidence.classifier import Vector
from ftagent.mitigate.planning import plan_vector
from ftagent.mitigate.protection import Protection
from ftagent.orders.operator_rules import apply_command
from ftcontract.agent_api import RuleCommand
from tests.unit.agent.packets import udp

pytestmark = [pytest.mark.kernel]


def net(text: str) -> Any:
    return ipaddress.ip_network(text)


def protection() -> Protection:
    return Protection(
        allowlist=[net("198.51.100.0/24")],
        control=[net("192.0.2.10/32")],
        own=[net("192.0.2.20/32")],
        management=[net("10.0.0.0/8")],
    )


def block(id: int, target: str) -> RuleCommand:
    return RuleCommand(id=id, action="block", target=target, ttl_s=60.0)


def test_every_protected_target_is_refused_and_nothing_reaches_the_kernel(clean_maps) -> None:
    p = protection()
    acks = [
        apply_command(block(1, "198.51.100.7"), clean_maps, p),
        apply_command(block(2, "192.0.2.0/24"), clean_maps, p),
        apply_command(block(3, "192.0.2.20"), clean_maps, p),
        apply_command(block(4, "10.9.9.9"), clean_maps, p),
    ]
    assert [(a.id, a.ok, a.error) for a in acks] == [
        (1, False, "198.51.100.7/32 is protected (allow-list)"),
        (2, False, "192.0.2.0/24 is protected (control-plane address)"),
        (3, False, "192.0.2.20/32 is protected (node's own address)"),
        (4, False, "10.9.9.9/32 is protected (management prefix)"),
    ]
    assert clean_maps.list_rules() == []


def test_the_mitigator_refuses_the_same_targets_through_the_same_object() -> None:
    p = protection()
    v = Vector("udp_flood", "udp", 1.0, 1e5)
    pkts = [udp("198.51.100.7", 1, 2)] * 30 + [udp("10.9.9.9", 1, 2)] * 30
    plan = plan_vector(v, pkts, MitigationConfig(max_source_rules=4), p.protected, lambda m: 9)
    assert {r.target: r.reason for r in plan.refused} == {
        "198.51.100.7/32": "allow-list",
        "10.9.9.9/32": "management prefix",
    }


def test_an_allowlist_override_moves_what_commands_refuse(clean_maps) -> None:
    p = protection()
    assert p.set_allowlist([net("203.0.113.0/24")])
    refused = apply_command(block(5, "203.0.113.9"), clean_maps, p)
    assert (refused.ok, refused.error) == (False, "203.0.113.9/32 is protected (allow-list)")
    ok = apply_command(block(6, "198.51.100.7"), clean_maps, p)  # no longer allow-listed
    assert (ok.ok, ok.error) == (True, "")
    assert [str(r.spec.network) for r in clean_maps.list_rules()] == ["198.51.100.7/32"]


def test_block_then_unblock_reach_the_kernel(clean_maps) -> None:
    p = protection()
    assert apply_command(block(7, "203.0.113.0/24"), clean_maps, p).ok
    (rule,) = clean_maps.list_rules()
    assert (rule.spec.kind, str(rule.spec.network)) == ("prefix", "203.0.113.0/24")
    unblock = RuleCommand(id=8, action="unblock", target="203.0.113.0/24")
    assert apply_command(unblock, clean_maps, p).ok
    assert clean_maps.list_rules() == []
    again = apply_command(RuleCommand(id=9, action="unblock", target="203.0.113.0/24"),
                          clean_maps, p)  # fmt: skip
    assert (again.ok, again.error) == (True, "was not blocked")
    bad = apply_command(RuleCommand(id=10, action="block", target="not-an-ip"), clean_maps, p)
    assert (bad.ok, bad.error) == (False, "not an address: not-an-ip")

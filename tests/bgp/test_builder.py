"""Announcements from an incident's rule figures, and who may be announced."""

from __future__ import annotations

import pytest

from control.bgp.announcements import FlowSpecRule, Rtbh
from control.bgp.builder import (
    Refusal,
    authorize,
    authorize_destination,
    flowspec_for_incident,
    flowspec_from_figure,
    rtbh_for,
)
from control.bgp.config import decode_bgp_config
from ftcontract.agent_api import IncidentFigures, RuleFigure

DECLARED = ["203.0.113.0/24", "2001:db8:5::/48"]


@pytest.mark.parametrize("address", ["203.0.113.7", "203.0.113.255", "2001:db8:5::7"])
def test_inside_declared_prefixes_is_authorized(address: str) -> None:
    assert authorize(address, DECLARED) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("198.51.100.7", "198.51.100.7 is outside the workspace's declared prefixes"),
        ("2001:db8:6::7", "2001:db8:6::7 is outside the workspace's declared prefixes"),
        ("not-an-ip", "'not-an-ip' is not an IP address"),
    ],
)
def test_outside_declared_prefixes_is_refused_with_a_reason(address: str, reason: str) -> None:
    assert authorize(address, DECLARED) == Refusal(reason)


def test_no_declared_prefixes_refuses_everything() -> None:
    refusal = authorize("203.0.113.7", [])
    assert refusal is not None
    assert "declared no prefixes" in refusal.reason


@pytest.mark.parametrize(
    ("destination", "allowed"),
    [
        ("203.0.113.7/32", True),
        ("203.0.113.0/24", True),  # a fleet group's prefix: the declared one
        ("203.0.113.128/25", True),
        ("203.0.112.0/23", False),  # starts outside, covers the declared /24 and more
        ("2001:db8:5:1::/64", True),
        ("2001:db8::/32", False),
    ],
)
def test_a_destination_prefix_must_lie_wholly_inside(destination: str, allowed: bool) -> None:
    refusal = authorize_destination(destination, DECLARED)
    assert (refusal is None) is allowed, refusal


def test_a_wider_prefix_starting_inside_is_refused() -> None:
    # its first address lies in the declared /24, its second half does not
    assert authorize_destination("203.0.112.0/23", ["203.0.112.0/24"]) is not None


def test_amplification_figure_becomes_a_source_port_discard() -> None:
    figure = RuleFigure(
        kind="signature", match="signature proto=17 sport=11211", proto=17, src_port=11211
    )
    assert flowspec_from_figure(figure, "203.0.113.7") == FlowSpecRule(
        destination="203.0.113.7/32", protocol=17, src_port=11211, action="discard"
    )


def test_syn_flood_rate_limit_figure_keeps_flags_mask_and_rate() -> None:
    figure = RuleFigure(
        kind="rate_limit",
        match="anything: never parsed",
        action="rate_limit",
        proto=6,
        dst_port=443,
        tcp_flags=0x02,
        tcp_flags_mask=0x12,
        rate_pps=5000,
        dst="2001:db8:5::7",
    )
    rule = flowspec_from_figure(figure, "2001:db8:5::7")
    assert rule == FlowSpecRule(
        destination="2001:db8:5::7/128",
        protocol=6,
        dst_port=443,
        tcp_flags=0x02,
        tcp_flags_mask=0x12,
        action="rate_limit",
        rate_pps=5000.0,
    )


def test_source_figure_matches_its_source_prefix() -> None:
    figure = RuleFigure(kind="prefix", match="src 198.51.100.0/24", network="198.51.100.0/24")
    rule = flowspec_from_figure(figure, "203.0.113.7")
    assert isinstance(rule, FlowSpecRule)
    assert rule.source == "198.51.100.0/24"


@pytest.mark.parametrize(
    ("figure", "reason"),
    [
        (RuleFigure(kind="signature", match="all"), "matches all traffic"),
        (RuleFigure(kind="signature", match="x", proto=17, dst="203.0.113.8"), "not the node's"),
        (RuleFigure(kind="prefix", match="x", network="2001:db8::/32"), "not the node's family"),
        (
            RuleFigure(kind="rate_limit", match="x", action="rate_limit", proto=17),
            "without rate_pps",
        ),
        (
            RuleFigure(kind="signature", match="x", proto=6, tcp_flags=0x12, tcp_flags_mask=0x02),
            "bits outside tcp_flags_mask",
        ),
    ],
)
def test_figures_that_cannot_be_flowspec_are_refused(figure: RuleFigure, reason: str) -> None:
    refusal = flowspec_from_figure(figure, "203.0.113.7")
    assert isinstance(refusal, Refusal)
    assert reason in refusal.reason


def test_rtbh_uses_the_configured_community_and_next_hops() -> None:
    cfg = decode_bgp_config(
        'router_id = "192.0.2.10"\nlocal_as = 64513\nrtbh_community = "64512:666"\n'
        'rtbh_next_hop_v6 = "2001:db8:ffff::1"\nlisten = { address = "192.0.2.10" }\n'
        '[[peers]]\naddress = "192.0.2.1"\npeer_as = 64512\n'
    )
    assert rtbh_for("203.0.113.7", cfg) == Rtbh(
        destination="203.0.113.7/32", next_hop="192.0.2.1", community=(64512, 666)
    )
    assert rtbh_for("2001:db8:5::7", cfg) == Rtbh(
        destination="2001:db8:5::7/128", next_hop="2001:db8:ffff::1", community=(64512, 666)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"destination": "203.0.113.7/24"}, "not a prefix"),  # host bits set
        ({"destination": "203.0.113.7/32", "source": "2001:db8::/32"}, "address family"),
        ({"destination": "203.0.113.7/32", "tcp_flags": 2}, "go together"),
        (
            {"destination": "203.0.113.7/32", "packet_length_min": 9, "packet_length_max": 3},
            "packet_length_min",
        ),
        ({"destination": "203.0.113.7/32", "action": "rate_limit"}, "rate_pps"),
        ({"destination": "203.0.113.7/32", "rate_pps": 5.0}, "rate_pps"),
    ],
)
def test_flowspec_rule_refuses_incoherent_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlowSpecRule(**kwargs)  # type: ignore[arg-type]


def test_rtbh_next_hop_family_must_match() -> None:
    with pytest.raises(ValueError, match="next_hop"):
        Rtbh(destination="203.0.113.7/32", next_hop="100::1")


def test_incident_rules_become_distinct_flowspec_rules_and_reasons() -> None:
    figures = IncidentFigures(
        seq=3,
        family="multi_vector",
        rules=[
            RuleFigure(kind="signature", match="udp sport 53", proto=17, src_port=53),
            RuleFigure(kind="signature", match="udp sport 53 again", proto=17, src_port=53),
            RuleFigure(kind="source", match="src 198.51.100.9", network="198.51.100.9/32"),
            RuleFigure(kind="signature", match="everything"),
        ],
    )
    plan = flowspec_for_incident(figures, "203.0.113.7")
    assert plan.rules == (
        FlowSpecRule(destination="203.0.113.7/32", protocol=17, src_port=53),
        FlowSpecRule(destination="203.0.113.7/32", source="198.51.100.9/32"),
    )
    [refusal] = plan.refusals
    assert refusal.reason.startswith("everything: the rule matches all traffic")

"""Announcements from what the incident shows, and the check of who may be announced.

A FlowSpec rule is built from a rule figure's structured fields (never from its `match`
text). Its destination is always the node's own address: a deploy token can register a
node with any IP, so `authorize` must pass first, against the prefixes the operator
declared for the workspace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Literal

import msgspec

from control.bgp.announcements import FlowSpecRule, Rtbh
from control.bgp.config import BgpConfig
from ftcontract.agent_api import IncidentFigures, RuleFigure

RefusalKind = Literal["not_allowed", "not_buildable", "cap", "rejected", "not_configured"]


class Refusal(msgspec.Struct, frozen=True):
    """Why nothing was announced; recorded on the incident as it is. `kind` says which
    rule refused it: the workspace's prefixes (not_allowed), the incident's figures
    (not_buildable), max_announcements (cap), ExaBGP itself (rejected), or no BGP at all
    (not_configured)."""

    reason: str
    kind: RefusalKind = "not_allowed"


def host_prefix(address: str) -> str:
    """ "198.51.100.7" -> "198.51.100.7/32"; "2001:db8::7" -> "2001:db8::7/128"."""
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


def authorize(address: str, declared_prefixes: Sequence[str]) -> Refusal | None:
    """None when `address` lies inside one of the workspace's declared prefixes."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return Refusal(f"{address!r} is not an IP address")
    for text in declared_prefixes:
        prefix = ipaddress.ip_network(text, strict=False)
        if prefix.version == ip.version and ip in prefix:
            return None
    if not declared_prefixes:
        return Refusal(f"{ip} is refused: the workspace has declared no prefixes")
    return Refusal(f"{ip} is outside the workspace's declared prefixes")


def authorize_destination(destination: str, declared_prefixes: Sequence[str]) -> Refusal | None:
    """None when the whole destination (an address, or a fleet group's prefix) lies inside
    one of the workspace's declared prefixes."""
    net = ipaddress.ip_network(destination, strict=False)
    refusal = authorize(str(net.network_address), declared_prefixes)
    if refusal is not None or net.num_addresses == 1:
        return refusal
    for text in declared_prefixes:
        prefix = ipaddress.ip_network(text, strict=False)
        if prefix.version == net.version and net.subnet_of(prefix):  # type: ignore[arg-type]
            return None
    return Refusal(f"{net} is not inside one of the workspace's declared prefixes")


def flowspec_from_figure(figure: RuleFigure, node_address: str) -> FlowSpecRule | Refusal:
    """The FlowSpec rule for one of the incident's rules, aimed at the node's address."""
    destination = host_prefix(node_address)
    if figure.dst is not None and ipaddress.ip_address(figure.dst) != ipaddress.ip_address(
        node_address
    ):
        return Refusal(
            f"the rule's destination {figure.dst} is not the node's {node_address}", "not_buildable"
        )
    source = None
    if figure.network is not None:
        net = ipaddress.ip_network(figure.network, strict=False)
        if net.version != ipaddress.ip_address(node_address).version:
            return Refusal(
                f"the rule's source {figure.network} is not the node's family", "not_buildable"
            )
        source = str(net)
    narrowed = (
        source,
        figure.proto,
        figure.src_port,
        figure.dst_port,
        figure.tcp_flags,
    )
    if all(value is None for value in narrowed):
        # a rule matching all traffic to the node is a blackhole: that is RTBH's decision
        return Refusal(
            "the rule matches all traffic to the node; escalate to RTBH instead", "not_buildable"
        )
    flags, mask = figure.tcp_flags, figure.tcp_flags_mask
    if flags is not None and mask is None:
        mask = flags
    rate_limited = figure.action == "rate_limit"
    if rate_limited and figure.rate_pps is None:
        return Refusal("a rate_limit rule without rate_pps", "not_buildable")
    try:
        return FlowSpecRule(
            destination=destination,
            source=source,
            protocol=figure.proto,
            src_port=figure.src_port,
            dst_port=figure.dst_port,
            tcp_flags=flags,
            tcp_flags_mask=mask,
            action="rate_limit" if rate_limited else "discard",
            rate_pps=float(figure.rate_pps)
            if rate_limited and figure.rate_pps is not None
            else None,
        )
    except ValueError as exc:
        return Refusal(f"the rule cannot be a FlowSpec rule: {exc}", "not_buildable")


class IncidentFlowSpec(msgspec.Struct, frozen=True):
    """The FlowSpec rules for an incident's rules, one per distinct match, and the reasons
    for the rules that cannot be FlowSpec rules."""

    rules: tuple[FlowSpecRule, ...]
    refusals: tuple[Refusal, ...]


def flowspec_for_incident(figures: IncidentFigures, node_address: str) -> IncidentFlowSpec:
    return flowspec_for_rules(figures.rules, node_address)


def flowspec_for_rules(rules: Sequence[RuleFigure], node_address: str) -> IncidentFlowSpec:
    built_rules: dict[str, FlowSpecRule] = {}
    refusals: list[Refusal] = []
    for figure in rules:
        built = flowspec_from_figure(figure, node_address)
        if isinstance(built, Refusal):
            refusals.append(Refusal(f"{figure.match}: {built.reason}", "not_buildable"))
        else:
            built_rules.setdefault(built.key(), built)  # the same match twice is one route
    return IncidentFlowSpec(rules=tuple(built_rules.values()), refusals=tuple(refusals))


def rtbh_for(node_address: str, config: BgpConfig) -> Rtbh:
    """The blackhole route for the node's /32 or /128, with the configured community."""
    version = ipaddress.ip_address(node_address).version
    next_hop = config.rtbh_next_hop if version == 4 else config.rtbh_next_hop_v6
    return Rtbh(
        destination=host_prefix(node_address), next_hop=next_hop, community=config.community
    )

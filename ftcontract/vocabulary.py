"""Words both sides use, each declared once; ordered tuples are derived from the Literals."""

from __future__ import annotations

from typing import Literal, get_args

# Lowest to highest: the order is the Literal's.
Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)


def severity_rank(severity: Severity) -> int:
    """0 for the lowest severity; a higher rank is more severe."""
    return SEVERITIES.index(severity)


Family = Literal[
    "udp_flood",
    "syn_flood",
    "ack_flood",
    "rst_flood",
    "tcp_flood",
    "icmp_flood",
    "fragment_flood",
    "dns_amplification",
    "ntp_amplification",
    "memcached_amplification",
    "ssdp_amplification",
    "cldap_amplification",
    "chargen_amplification",
    "multi_vector",
    "unknown",
]
FAMILIES: tuple[Family, ...] = get_args(Family)

# on: rules installed; dry_run: rules computed and reported, never installed; off: neither.
MitigationMode = Literal["on", "dry_run", "off"]
MITIGATION_MODES: tuple[MitigationMode, ...] = get_args(MitigationMode)

# How the agent's XDP program is attached ("none": not attached).
XdpMode = Literal["native", "generic", "none"]

BaselineState = Literal["learning", "ready"]
AttackState = Literal["normal", "attack"]

# A mitigation rule as reported: what it matches (source address, prefix, a packet
# signature) and, for a token bucket instead of a full drop, "rate_limit".
RuleKind = Literal["source", "prefix", "signature", "rate_limit"]
RuleAction = Literal["drop", "rate_limit"]

# Why an incident ended: its traffic stayed below threshold for the cool-down; the agent
# stopped cleanly during it; or the agent restarted after a crash and found it still open.
ResolveReason = Literal["cooled_down", "agent_stopped", "agent_restarted"]

# An operator's rule command to one node.
CommandAction = Literal["block", "unblock"]

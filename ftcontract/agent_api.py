"""The Agent API's messages (`/api/v1/agent/...`).

The agent encodes these; the control plane decodes them with forbid_unknown_fields and
the limits of `ftcontract.bounds`, so a typo in a field name or an oversized value is a
400 naming the field, never silently lost data. The agent decodes the replies. Times are
Unix seconds (float, UTC); rates are per second.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ftcontract.bounds import (
    MAX_ALLOWLIST,
    MAX_EVIDENCE_KEYS,
    MAX_RULES,
    MAX_TOP_SOURCES,
    Address,
    AttackSamples,
    BurstFactor,
    ConfirmWindows,
    Count,
    Id,
    IdleSamples,
    Multiplier,
    Name,
    NonNegative,
    Port,
    Positive,
    Rate,
    RuleTtl,
    Shares,
    Text,
    UnixTime,
    Uuid,
)
from ftcontract.vocabulary import (
    AttackState,
    BaselineState,
    CommandAction,
    Family,
    MitigationMode,
    ResolveReason,
    RuleAction,
    RuleKind,
    Severity,
    XdpMode,
)

# ---- heartbeat ----------------------------------------------------------------------------


class Heartbeat(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: Name
    xdp_mode: XdpMode
    interface: Name = ""
    baseline_state: BaselineState = "learning"
    attack_state: AttackState = "normal"
    spool_size: Count = 0
    uptime_s: NonNegative = 0.0
    pps: Rate = 0.0
    rules_active: Count = 0
    # the mode in force on the node (its config's, or the control plane's override)
    mitigation_mode: MitigationMode = "on"


class HeartbeatReply(msgspec.Struct, kw_only=True):
    ok: bool
    status: str
    config_version: int
    pending_commands: int


# ---- configuration pushed to the agent ------------------------------------------------------


class Thresholds(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Detection settings; None = the agent's own. `floors` keys are the agent's
    [detection.floors] names (pps, bps, syn_pps, ...)."""

    multiplier: Multiplier | None = None
    burst_factor: BurstFactor | None = None
    confirm_windows: ConfirmWindows | None = None
    cooldown_s: Positive | None = None
    floors: Annotated[dict[Name, NonNegative], msgspec.Meta(max_length=32)] | None = None


class Sampling(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Packet sampling for classification and pcap; None = the agent's own."""

    idle_samples_per_s: IdleSamples | None = None
    attack_samples_per_s: AttackSamples | None = None


class Overrides(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What an operator may override on one node; absent or null = the node's own config.

    Each push carries the whole set: a key left out goes back to the node's config.
    """

    thresholds: Thresholds = msgspec.field(default_factory=Thresholds)
    mitigation_mode: MitigationMode | None = None
    rule_ttl_s: RuleTtl | None = None
    # None: keep the agent's configured allow-list; a list replaces it.
    allowlist: Annotated[list[Address], msgspec.Meta(max_length=MAX_ALLOWLIST)] | None = None
    sampling: Sampling = msgspec.field(default_factory=Sampling)


class RuleCommand(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An operator's block/unblock, handed out until the agent acks it.

    `target` is an address or prefix ("198.51.100.7", "203.0.113.0/24", "2001:db8::/48").
    """

    id: Id
    action: CommandAction
    target: Address
    ttl_s: RuleTtl = 3600.0


class AgentConfig(Overrides, kw_only=True, omit_defaults=False):
    """GET config: the overrides in force, with a version and the pending commands."""

    # Bumped by the control plane on every change; the agent re-fetches when it moves.
    config_version: int
    commands: list[RuleCommand] = []


class AgentConfigReply(msgspec.Struct, kw_only=True):
    ok: bool
    config: AgentConfig


class CommandAck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Id
    ok: bool
    error: Text = ""


class CommandAcks(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    acks: Annotated[list[CommandAck], msgspec.Meta(max_length=MAX_RULES)]


# ---- metrics ------------------------------------------------------------------------------


class MetricPoint(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One second of traffic as the agent measured it (before XDP drops: 'in')."""

    ts: UnixTime
    pps: Rate
    bps: Rate
    dropped_pps: Rate = 0.0
    dropped_bps: Rate = 0.0
    # packets per second by class: tcp, udp, icmp, other, fragment
    protocols: Shares = {}
    # packets per second by TCP flag class: syn, synack, ack, rst, fin, other
    tcp_flags: Shares = {}
    # an incident was active during this second (kept out of the baseline's shares)
    attack: bool = False
    baseline_avg_pps: Rate | None = None
    baseline_p95_pps: Rate | None = None
    baseline_p99_pps: Rate | None = None
    # The uplink as the node's interface saw it this second: packets the NIC or driver
    # could not take (rx dropped + missed + fifo errors, per second), and the agent's
    # verdict that the link is full (losses rising while XDP drops cannot bring the
    # received rate down). The control plane escalates upstream on it (BGP policy).
    rx_lost_pps: Rate = 0.0
    link_saturated: bool = False
    # ---- since the fleet release (optional: older agents send none of these) ----
    # UDP packets per second by source port: the amplification ports ("53", "123", ...)
    # and "other"; only the non-zero ones. What the control plane sums per group to name
    # a spread amplification attack (fleet detection), with `protocols` and `tcp_flags`.
    udp_ports: Shares = {}
    # IPv6 packets per second (the rest of `pps` is IPv4 or not IP)
    ipv6_pps: Rate = 0.0
    # The fleet rules in force on the node this second, per fleet incident, with what each
    # dropped and spared since it was installed (cumulative). Absent: none in force.
    fleet_rules: Annotated[list[FleetRuleReport], msgspec.Meta(max_length=16)] = []


class MetricsBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    points: list[MetricPoint]


# ---- fleet orders (the control plane's answer to an attack spread over a group) ----------


class FleetVector(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One vector of a fleet attack as the shared classifier named it from the group's
    summed rates (`ftcontract.classify.Vector`)."""

    family: Family
    group: Name  # tcp | udp | icmp | other
    share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    amp_port: Port | None = None


class FleetOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A fleet incident's answer for one node: the agent plans the vectors' rules exactly
    as for an incident of its own (socket-aware signature rules that spare the node's
    real users) and keeps them `ttl_s` from the moment it last received this order. The
    control plane lists the order in every reply while the fleet incident lasts (renewal);
    an order no longer listed is removed at once; an agent cut off from the control plane
    loses it when the TTL runs out in the kernel (fail open)."""

    incident_uuid: Uuid
    family: Family
    vectors: Annotated[list[FleetVector], msgspec.Meta(min_length=1, max_length=8)]
    ttl_s: RuleTtl
    # the group the attack was seen on ("203.0.113.0/24", or "workspace")
    group: Name = ""


class FleetOrders(msgspec.Struct, kw_only=True):
    """GET /api/v1/agent/fleet: the fleet orders in force for this node.

    `version` moves whenever this node's orders, its config or its pending operator
    commands change, so one long-poll (`?after=VERSION&wait=S`) wakes the agent for all
    three: the orders are in the reply; a moved `config_version` or `pending_commands`
    means fetch GET /config now (operator block commands take this path)."""

    version: int
    orders: list[FleetOrder] = []
    config_version: int = 0
    pending_commands: int = 0


class FleetRuleReport(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True
):
    """The rules one fleet order put in the node's kernel, with their counters."""

    incident_uuid: Uuid
    rules: Annotated[list[RuleFigure], msgspec.Meta(max_length=64)] = []
    # Unix time the node first had a rule of this order in force
    in_force_since: UnixTime | None = None


# ---- incidents ----------------------------------------------------------------------------


class SourceFigure(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ip: Address
    pps: Rate = 0.0
    bps: Rate = 0.0


class RuleFigure(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """A mitigation rule as the incident shows it: its kind, a human `match` text for
    people, and the same match as fields for programs (never parse `match`)."""

    kind: RuleKind
    match: Text  # e.g. "signature proto=17 sport=11211" or "src 198.51.100.7/32"
    action: RuleAction = "drop"
    ttl_sec: Count | None = None
    dropped_packets: Count = 0
    # packets that matched but were let through because a socket of the node wanted them
    spared_packets: Count = 0
    # the match, field by field (None: not part of the match)
    network: Address | None = None  # source address or prefix (source / prefix rules)
    proto: Annotated[int, msgspec.Meta(ge=0, le=255)] | None = (
        None  # IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6)
    )
    src_port: Port | None = None
    dst_port: Port | None = None
    tcp_flags: Annotated[int, msgspec.Meta(ge=0, le=255)] | None = (
        None  # match when flags & tcp_flags_mask == tcp_flags
    )
    tcp_flags_mask: Annotated[int, msgspec.Meta(ge=0, le=255)] | None = None
    dst: Address | None = None  # destination address
    rate_pps: Count | None = None  # token bucket: packets per second let through


class IncidentFigures(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What the agent knows about an incident at one moment; every report carries all of it,
    so a later report supersedes an earlier one and a replay cannot go backwards (`seq`)."""

    seq: Count
    family: Family
    subtype: Name | None = None
    severity: Severity = "low"
    # True while `severity` was judged on the confirming window alone (the agent reports
    # an attack at once, before a full window): the report that settles it is a
    # refinement, never an escalation (no second notification).
    severity_provisional: bool = False
    # the highest one-second rate (what operators and every peer call the peak)
    peak_pps: Rate = 0.0
    peak_bps: Rate = 0.0
    # the highest rate over one detection window (100 ms by default): bursts show here
    peak_burst_pps: Rate = 0.0
    peak_burst_bps: Rate = 0.0
    current_pps: Rate = 0.0
    # the baseline p99 and the pps threshold in force when the attack was confirmed
    baseline_p99_pps: Rate | None = None
    threshold_pps: Rate | None = None
    # share of the attack's packets by protocol class, percent
    protocols: Shares = {}
    top_sources: Annotated[list[SourceFigure], msgspec.Meta(max_length=MAX_TOP_SOURCES)] = []
    # distinct source addresses seen so far (the agent counts its sampled packets' sources)
    source_count: Count = 0
    evidence: Annotated[dict[Name, Any], msgspec.Meta(max_length=MAX_EVIDENCE_KEYS)] = {}
    rules: Annotated[list[RuleFigure], msgspec.Meta(max_length=MAX_RULES)] = []
    # first time a rule was in place (Unix s); None while nothing is dropped
    mitigated_at: UnixTime | None = None


class IncidentOpen(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    uuid: Uuid  # generated by the agent: replays of the same open are one incident
    started_at: UnixTime
    figures: IncidentFigures


class IncidentUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    figures: IncidentFigures


class IncidentResolve(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ended_at: UnixTime
    reason: ResolveReason = "cooled_down"
    figures: IncidentFigures


class IncidentReply(msgspec.Struct, kw_only=True):
    ok: bool
    uuid: str
    status: str
    created: bool = False


class PcapReply(msgspec.Struct, kw_only=True):
    ok: bool
    sha256: str
    size: int


class OkReply(msgspec.Struct, kw_only=True):
    ok: bool
    accepted: int = 0


class MetricsReply(OkReply, kw_only=True, omit_defaults=True):
    """POST metrics: also the node's fleet orders version (see FleetOrders): an agent whose
    long-poll is down learns within a second that its orders changed."""

    fleet_version: int | None = None

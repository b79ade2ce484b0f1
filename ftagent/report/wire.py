"""The Agent API's messages (`/api/v1/agent/...`), defined once for both ends.

The agent encodes these; the control plane decodes them with forbid_unknown_fields, so a
typo in a field name is a 400 with the field named, never silently lost data. Times are
Unix seconds (float, UTC); rates are per second.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ftagent.config import MitigationMode as MitigationMode  # re-exported: wire type
from ftagent.severity import Severity

XdpMode = Literal["native", "generic", "none"]
BaselineState = Literal["learning", "ready"]
AttackState = Literal["normal", "attack"]
CommandAction = Literal["block", "unblock"]

# Size limits, checked when a message is decoded (the control plane decodes every agent
# message, the agent every reply): each is far above what a real agent sends (top
# sources <= 1,000 and rules <= 10,000 by its config), and a bad or hostile node cannot
# grow a row or a message without bound. Over a limit: 400 naming the field.
Name = Annotated[str, msgspec.Meta(max_length=64)]  # family, version, class names ...
Text = Annotated[str, msgspec.Meta(max_length=1024)]  # human text (rule match, errors)
Address = Annotated[str, msgspec.Meta(max_length=64)]  # an address or prefix
Shares = Annotated[dict[Name, float], msgspec.Meta(max_length=32)]
Uuid = Annotated[
    str, msgspec.Meta(pattern="^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
]


class Heartbeat(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: Name
    xdp_mode: XdpMode
    interface: Name = ""
    baseline_state: BaselineState = "learning"
    attack_state: AttackState = "normal"
    spool_size: int = 0
    uptime_s: float = 0.0
    pps: float = 0.0
    rules_active: int = 0
    mitigation_mode: MitigationMode = "on"


class HeartbeatReply(msgspec.Struct, kw_only=True):
    ok: bool
    status: str
    config_version: int
    pending_commands: int


class Thresholds(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Control-plane overrides of the agent's detection settings; None = the agent's own.

    `floors` keys are the agent's [detection.floors] names (pps, bps, syn_pps, ...).
    """

    multiplier: float | None = None
    burst_factor: float | None = None
    confirm_windows: int | None = None
    cooldown_s: float | None = None
    floors: Shares | None = None


class Sampling(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Packet sampling for classification and pcap; None = the agent's own."""

    idle_samples_per_s: int | None = None
    attack_samples_per_s: int | None = None


class RuleCommand(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An operator's block/unblock, handed out until the agent acks it.

    `target` is an address or prefix ("198.51.100.7", "203.0.113.0/24", "2001:db8::/48").
    """

    id: int
    action: CommandAction
    target: Address
    ttl_s: float = 3600.0


class AgentConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Bumped by the control plane on every change; the agent re-fetches when it moves.
    config_version: int
    thresholds: Thresholds = msgspec.field(default_factory=Thresholds)
    mitigation_mode: MitigationMode | None = None
    rule_ttl_s: float | None = None
    # None: keep the agent's configured allow-list; a list replaces it.
    allowlist: Annotated[list[Address], msgspec.Meta(max_length=10_000)] | None = None
    sampling: Sampling = msgspec.field(default_factory=Sampling)
    commands: list[RuleCommand] = []


class AgentConfigReply(msgspec.Struct, kw_only=True):
    ok: bool
    config: AgentConfig


class CommandAck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: int
    ok: bool
    error: Text = ""


class CommandAcks(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    acks: Annotated[list[CommandAck], msgspec.Meta(max_length=10_000)]


class MetricPoint(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One second of traffic as the agent measured it (before XDP drops: 'in')."""

    ts: float
    pps: float
    bps: float
    dropped_pps: float = 0.0
    dropped_bps: float = 0.0
    # packets per second by class: tcp, udp, icmp, other, fragment
    protocols: Shares = {}
    # packets per second by TCP flag class: syn, synack, ack, rst, fin, other
    tcp_flags: Shares = {}
    # an incident was active during this second (kept out of the baseline's shares)
    attack: bool = False
    baseline_avg_pps: float | None = None
    baseline_p95_pps: float | None = None
    baseline_p99_pps: float | None = None


class MetricsBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    points: list[MetricPoint]


class SourceFigure(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ip: Address
    pps: float = 0.0
    bps: float = 0.0


class RuleFigure(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A mitigation rule as the incident shows it."""

    kind: Literal["source", "prefix", "signature", "rate_limit"]
    match: Text  # human text, e.g. "udp sport 11211" or "198.51.100.7/32"
    action: Literal["drop", "rate_limit"] = "drop"
    ttl_sec: int | None = None
    dropped_packets: int = 0


class IncidentFigures(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What the agent knows about an incident at one moment; every report carries all of it,
    so a later report supersedes an earlier one and a replay cannot go backwards (`seq`)."""

    seq: int
    family: Name
    subtype: Name | None = None
    severity: Severity = "low"
    peak_pps: float = 0.0
    peak_bps: float = 0.0
    current_pps: float = 0.0
    baseline_p95_pps: float | None = None
    threshold_pps: float | None = None
    # share of the attack's packets by protocol class, percent
    protocols: Shares = {}
    top_sources: Annotated[list[SourceFigure], msgspec.Meta(max_length=1000)] = []
    # distinct source addresses seen so far (the agent counts its sampled packets' sources)
    source_count: Annotated[int, msgspec.Meta(ge=0)] = 0
    evidence: Annotated[dict[Name, Any], msgspec.Meta(max_length=64)] = {}
    rules: Annotated[list[RuleFigure], msgspec.Meta(max_length=10_000)] = []
    # first time a rule was in place (Unix s); None while nothing is dropped
    mitigated_at: float | None = None


class IncidentOpen(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    uuid: Uuid  # generated by the agent: replays of the same open are one incident
    started_at: float
    figures: IncidentFigures


class IncidentUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    figures: IncidentFigures


class IncidentResolve(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ended_at: float
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

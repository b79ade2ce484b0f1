"""The seam between the agent loop and whatever reports to a control plane.

The loop calls an `EventSink` from its 10 Hz thread. Every method must return at once:
an implementation queues the event (and spools it) and does its network I/O elsewhere.
`ftagent.report` provides the control-plane sink; `NullSink` is used when the config has
no [control] section, so the agent detects and mitigates with no control plane at all.

Everything crossing this seam is a typed Struct: the contract's own messages
(`ftcontract.agent_api`) where the control plane will see the same thing, and the small
agent-side Structs below where the loop knows more than the wire carries. A sink maps
them field by field; it never parses text or guesses units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import msgspec

from ftcontract import agent_api
from ftcontract.vocabulary import BaselineState, MitigationMode, ResolveReason, XdpMode


class AgentStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the heartbeat says about the node, as the loop saw it at its last second."""

    interface: str
    xdp_mode: XdpMode
    baseline_state: BaselineState
    attack: bool
    pps: float
    rules_active: int
    # the mode in force on the agent: its config's or the control plane's override
    mitigation_mode: MitigationMode


class ReportingState(msgspec.Struct, frozen=True, kw_only=True):
    """The control-plane reporter as the loop last asked it (once a second): /health's
    `control_plane` and `ftagent status`."""

    server: str
    # closed: reachable; open: unreachable (reports spooled, retried later); half_open:
    # one probe request out after an outage
    breaker: str
    spooled: int  # reports waiting in the spool (kept across restarts)
    sent_batches: int
    failures: int
    last_error: str | None  # the last failed request's, None when none failed yet


class MitigationStep(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an incident's mitigation history (logs, tests, `mitigated_at`)."""

    at: float  # Unix seconds
    action: str  # rules_added | dry_run | none | widened | widen_failed | refused | released
    reason: str
    rules: tuple[str, ...] = ()


class IncidentReport(msgspec.Struct, frozen=True, kw_only=True):
    """One report of an incident: the contract's figures plus what only the agent keeps.

    `figures.seq` grows with every report the incident makes, so a replay cannot go
    backwards on the control plane.
    """

    uuid: str
    started_at: float  # Unix seconds
    figures: agent_api.IncidentFigures
    mitigation_mode: MitigationMode
    history: tuple[MitigationStep, ...] = ()
    # set on the last report only
    ended_at: float | None = None
    reason: ResolveReason | None = None


class RuleMatch(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A RuleSpec's match, field by field (the same fields as `agent_api.RuleFigure`)."""

    network: str | None = None
    proto: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    tcp_flags: int | None = None
    tcp_flags_mask: int | None = None
    dst: str | None = None
    rate_pps: int | None = None
    spare: str = "none"  # RuleSpec.spare: what the node's sockets want passes
    spare_known: bool = False
    fragments: bool = False


class RuleChange(msgspec.Struct, frozen=True, kw_only=True):
    """A rule the mitigator added, renewed, widened, would add (dry_run), removed, or
    replaced (a rule with the same match took its place: a tightened guard)."""

    action: str  # added | renewed | widened | would_add | removed | replaced
    rule: str  # RuleSpec.describe(): for people and logs
    kind: str  # src | prefix | signature
    spec: RuleMatch
    ttl_s: float
    incident_uuid: str | None
    reason: str
    mode: MitigationMode
    at: float  # Unix seconds


class EventSink(Protocol):
    """What the loop reports. All calls are non-blocking; none may raise for network reasons."""

    def start(self, status: AgentStatus) -> None:
        """Called once before the first window with the node's status (a sink may start
        its own thread here)."""
        ...

    def incident_opened(self, report: IncidentReport) -> None:
        """A confirmed attack (the incident's first report)."""
        ...

    def incident_updated(self, report: IncidentReport, escalated: bool) -> None:
        """Newer figures; `escalated` when the severity went up or a vector was added.
        Sent at most once a second."""
        ...

    def incident_resolved(self, report: IncidentReport) -> None:
        """Final figures, with `ended_at` and `reason` set."""
        ...

    def metrics_second(self, point: agent_api.MetricPoint, status: AgentStatus) -> None:
        """One second of traffic, and the node's status at that second (for the heartbeat)."""
        ...

    def rule_changed(self, change: RuleChange) -> None: ...

    def pcap_ready(self, incident_uuid: str, path: Path) -> None:
        """The incident's pcap file is complete (closed) at `path`."""
        ...

    def poll_control(self) -> agent_api.AgentConfig | None:
        """The control plane's newest settings and operator commands, if anything changed
        since the last call, else None. Must return immediately (serve what a background
        fetch cached). The loop applies them and answers with `commands_done`."""
        ...

    def commands_done(self, acks: list[agent_api.CommandAck]) -> None:
        """The loop's answers to the operator commands `poll_control` handed it."""
        ...

    def close(self) -> None:
        """The agent is stopping: flush what can be flushed quickly (spool the rest)."""
        ...


class NullSink:
    """No control plane: events are only logged by the loop itself."""

    def start(self, status: AgentStatus) -> None:
        return None

    def incident_opened(self, report: IncidentReport) -> None:
        return None

    def incident_updated(self, report: IncidentReport, escalated: bool) -> None:
        return None

    def incident_resolved(self, report: IncidentReport) -> None:
        return None

    def metrics_second(self, point: agent_api.MetricPoint, status: AgentStatus) -> None:
        return None

    def rule_changed(self, change: RuleChange) -> None:
        return None

    def pcap_ready(self, incident_uuid: str, path: Path) -> None:
        return None

    def poll_control(self) -> agent_api.AgentConfig | None:
        return None

    def commands_done(self, acks: list[agent_api.CommandAck]) -> None:
        return None

    def close(self) -> None:
        return None

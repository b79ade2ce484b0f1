"""The seam between the agent loop and whatever reports to a control plane.

The loop calls an `EventSink` from its 10 Hz thread. Every method must return at once:
an implementation queues the event (and spools it) and does its network I/O elsewhere.
`ftagent.report` provides the control-plane sink; `NullSink` is used when the config has
no [control] section, so the agent detects and mitigates with no control plane at all.

Payloads are plain JSON-ready dicts (str/int/float/bool/None/list/dict) so that a sink can
spool them to disk as they are. Their shapes are documented on each method.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class Overrides(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Settings the control plane may push; None keeps the local config value.

    `floors` keys are the names of `ftagent.config.Floors` (pps, bps, syn_pps, ...).
    `allowlist` replaces the configured allow-list (CIDR strings) when set.
    `idle_samples_per_s` / `attack_samples_per_s` replace [capture]'s sampling targets
    (None: the config's value); they are checked like the config (attack >= idle).
    """

    mitigation_mode: str | None = None  # on | dry_run | off
    multiplier: float | None = None
    burst_factor: float | None = None
    confirm_windows: int | None = None
    cooldown_s: float | None = None
    rule_ttl_s: float | None = None
    floors: dict[str, float] | None = None
    allowlist: list[str] | None = None
    idle_samples_per_s: int | None = None
    attack_samples_per_s: int | None = None


class EventSink(Protocol):
    """What the loop reports. All calls are non-blocking; none may raise for network reasons."""

    def start(self) -> None:
        """Called once before the first window (a sink may start its own thread here)."""
        ...

    def incident_opened(self, incident: dict[str, Any]) -> None:
        """A confirmed attack. `incident` (see ftagent.incident.Incident.to_dict):
        uuid (uuid4, made here), status "active", family, subtype, severity,
        started_at (ISO-8601 UTC), started_at_unix, peak_pps, peak_bps, mean_pps,
        mean_bps, baseline_pps (p99 when confirmed), threshold_pps, evidence (dict),
        top_sources [{address, pps, bps, packets, bytes}], top_dst_ports
        [{port, share}], source_count, protocol_breakdown {tcp, udp, icmp, other: share},
        rules [RuleSpec.describe()], mitigation [{at, action, rules, reason}],
        mitigation_mode, interface.
        """
        ...

    def incident_updated(self, incident: dict[str, Any], escalated: bool) -> None:
        """The same dict, newer numbers; `escalated` when the severity went up
        (or the family changed to multi_vector). Sent at most once a second."""
        ...

    def incident_resolved(self, incident: dict[str, Any]) -> None:
        """Final numbers; adds ended_at, ended_at_unix, duration_s, status "resolved"."""
        ...

    def metrics_second(self, point: dict[str, Any]) -> None:
        """One-second aggregate: ts (unix float), pps, bps, tcp_pps, udp_pps, icmp_pps,
        fragment_pps, syn_pps, ack_pps, rst_pps, amp_pps, dropped_pps, dropped_bps,
        baseline_ready, attack_active, rules_active, baseline {metric: {avg, p95, p99}}
        (pps and bps only)."""
        ...

    def rule_changed(self, change: dict[str, Any]) -> None:
        """action: added | renewed | removed | widened | would_add (dry_run);
        rule (describe()), kind, spec (dict), ttl_s, incident_uuid (or None), reason, at."""
        ...

    def pcap_ready(self, incident_uuid: str, path: str) -> None:
        """The incident's pcap file is complete (closed) at `path`."""
        ...

    def poll_overrides(self) -> Overrides | None:
        """The latest settings from the control plane if they changed since the last call,
        else None. Must return immediately (serve what a background fetch cached)."""
        ...

    def close(self) -> None:
        """The agent is stopping: flush what can be flushed quickly (spool the rest)."""
        ...


class NullSink:
    """No control plane: events are only logged by the loop itself."""

    def start(self) -> None:
        return None

    def incident_opened(self, incident: dict[str, Any]) -> None:
        return None

    def incident_updated(self, incident: dict[str, Any], escalated: bool) -> None:
        return None

    def incident_resolved(self, incident: dict[str, Any]) -> None:
        return None

    def metrics_second(self, point: dict[str, Any]) -> None:
        return None

    def rule_changed(self, change: dict[str, Any]) -> None:
        return None

    def pcap_ready(self, incident_uuid: str, path: str) -> None:
        return None

    def poll_overrides(self) -> Overrides | None:
        return None

    def close(self) -> None:
        return None

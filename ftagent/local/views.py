"""What the agent shows locally, as one typed snapshot: the loop builds a `Snapshot` each
window (under its lock) from its own objects; `/health` (also `ftagent status`) and the
gauges and counters of `/metrics` are formatted from it and from nothing else, so the
HTTP thread never reads live state: no map, no mitigator, no reporter.

`Health` is the /health document itself (msgspec encodes its fields in order, so the
JSON keys are the fields); `ftagent status` decodes the same type. Fields an older agent
did not send have defaults, so `status` still reads an older agent's /health.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from ftagent.datapath import AttachInfo, Counters, Rule
from ftagent.events import ReportingState
from ftagent.link.link import LinkState
from ftagent.mitigate.guard import SocketGuard, SyncookieState
from ftagent.orders.fleet import FleetRules
from ftagent.respond.incident import Incident

HEALTH_THRESHOLDS = ("pps", "bps", "udp_pps", "syn_pps", "icmp_pps")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class IncidentHealth(msgspec.Struct, frozen=True, kw_only=True):
    """The active incident as /health shows it."""

    uuid: str
    family: str
    subtype: str
    severity: str
    started_at: str  # ISO 8601, UTC
    peak_pps: int
    rules: tuple[str, ...] = ()  # RuleSpec.describe() of each rule it holds


class FleetOrderHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A fleet order held: its incident, family, group, rules, when its rules expire unless
    renewed (every answer of the control plane renews them) and since when in force."""

    incident_uuid: str
    family: str
    group: str
    vectors: tuple[str, ...] = ()
    rules: tuple[str, ...]
    mode: str
    ttl_s: float = 0.0
    expires_in_s: float
    expires_at: str = ""
    received_at: str = ""
    in_force_since: str | None
    notes: tuple[str, ...] = ()


class LinkHealth(msgspec.Struct, frozen=True, kw_only=True):
    """The uplink as the interface saw it in the last second (see ftagent.link.link)."""

    readable: bool
    rx_lost_pps: float
    saturated: bool
    saturated_since: str | None
    rx_dropped: int | None
    rx_missed_errors: int | None
    rx_fifo_errors: int | None
    error: str | None


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The /health document (field order is the JSON's key order)."""

    status: str  # "attack" while an incident is active, else "ok"
    version: str
    uptime_s: float  # set at scrape time (it advances between windows)
    interface: str
    xdp_mode: str
    prog_id: int
    pps: float
    bps: float
    dropped_pps: float
    baseline_ready: bool
    baseline_samples: int
    attack_active: bool
    mitigation_mode: str
    rules_active: int  # rules the mitigator holds in the kernel
    rules: tuple[str, ...]  # every rule the mitigator holds (dry run: would hold)
    thresholds: dict[str, float]
    incident: IncidentHealth | None
    # The control plane's orders against an attack spread over the node's groups.
    fleet_orders: tuple[FleetOrderHealth, ...] = ()
    incidents_total: int = 0
    link: LinkHealth | None = None
    # Whether rules spare what the node's sockets want; else plain rules (the reason).
    socket_guard: bool = False
    socket_guard_reason: str = ""
    # Clients that only exchanged UDP with the node become known sources (TC egress);
    # the error says why the kernel refused it (then a warning too).
    udp_egress_learning: bool = False
    udp_egress_error: str | None = None
    tcp_syncookies: int | None = None
    warnings: tuple[str, ...] = ()
    # The reporter to the control plane as of the last second; None: stand-alone.
    control_plane: ReportingState | None = None


class Quantiles(msgspec.Struct, frozen=True):
    """One baseline metric as /metrics shows it (labels avg, 0.95, 0.99)."""

    avg: float
    p95: float
    p99: float


class MetricsView(msgspec.Struct, frozen=True, kw_only=True):
    """What /metrics adds to `Health`: the kernel counters as the loop last read them, the
    kernel's rules with their counters (read once a second and after each change the loop
    made), the baseline and the loop's gauges."""

    counters: Counters | None  # None before the loop's first read
    rules: tuple[Rule, ...]
    rules_read_at_ns: int  # CLOCK_MONOTONIC of that read (which rules had not expired)
    baseline: dict[str, Quantiles]  # pps, bps
    thresholds: dict[str, float]  # every metric's, not only HEALTH_THRESHOLDS
    current_pps: float | None  # the last window's (None before the first window)
    current_bps: float | None
    sample_one_in: int
    incidents: dict[str, int]  # incidents opened, by family
    link: LinkState
    # Whether the kernel still runs OUR program on the interface (asked once a second:
    # another tool may have replaced or removed it).
    xdp_attached: bool

    @property
    def rules_in_kernel(self) -> int:
        """Rules the kernel still applies (not expired) as of the read."""
        return sum(1 for r in self.rules if r.expires_ns > self.rules_read_at_ns)


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the local views show, as of one window. Replaced whole, never changed."""

    started: float  # time.monotonic() when the agent started
    health: Health
    metrics: MetricsView

    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def health_now(self) -> Health:
        """/health as of now: the snapshot's, with the uptime of this moment."""
        return msgspec.structs.replace(self.health, uptime_s=round(self.uptime_s(), 1))


# ---- built by the loop, from its own objects ------------------------------------------


def incident_health(inc: Incident) -> IncidentHealth:
    return IncidentHealth(
        uuid=inc.uuid,
        family=inc.family,
        subtype=inc.classification.subtype,
        severity=inc.severity,
        started_at=iso(inc.started_at),
        peak_pps=round(inc.peak_pps),
        rules=tuple(s.describe() for s in inc.rules),
    )


def fleet_orders(fleet: FleetRules, wall_now: float) -> tuple[FleetOrderHealth, ...]:
    out = []
    for uuid, st in fleet.orders.items():
        left = fleet.expires_in(uuid)
        out.append(
            FleetOrderHealth(
                incident_uuid=uuid,
                family=st.order.family,
                group=st.order.group,
                vectors=tuple(v.family for v in st.order.vectors),
                rules=tuple(s.describe() for s in fleet.rules_of(uuid)),
                mode=st.mode,
                ttl_s=st.order.ttl_s,
                expires_in_s=round(left, 1),
                expires_at=iso(wall_now + left),
                received_at=iso(st.received_at),
                in_force_since=iso(st.in_force_since) if st.in_force_since else None,
                notes=tuple(st.notes),
            )
        )
    return tuple(out)


def link_health(state: LinkState) -> LinkHealth:
    losses = state.losses
    return LinkHealth(
        readable=state.readable,
        rx_lost_pps=round(state.rx_lost_pps, 1),
        saturated=state.saturated,
        saturated_since=iso(state.saturated_since) if state.saturated_since else None,
        rx_dropped=losses.dropped if losses else None,
        rx_missed_errors=losses.missed if losses else None,
        rx_fifo_errors=losses.fifo if losses else None,
        error=state.error or None,
    )


def warnings(guard: SocketGuard, info: AttachInfo, syncookies: SyncookieState) -> tuple[str, ...]:
    """What an operator should fix: mitigation works, but worse than it could."""
    out = []
    if not guard.available:
        out.append(
            f"socket guard off ({guard.reason}): plain rules, real users share the rate limits"
        )
    if info.udp_egress_error is not None:
        out.append(
            f"UDP egress learning off ({info.udp_egress_error}): clients that only exchanged "
            "UDP with the node are not known sources"
        )
    if syncookies.warning is not None:
        out.append(syncookies.warning)
    return tuple(out)


def shown_thresholds(thresholds: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in thresholds.items() if k in HEALTH_THRESHOLDS}

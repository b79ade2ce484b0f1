"""What the agent shows locally: the /health snapshot (also `ftagent status`) and the
gauges of /metrics. JSON views for people and Prometheus, built from the loop's objects;
the loop takes a snapshot after each change so the HTTP thread never reads live state."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ftagent
from ftagent.link import LinkState

if TYPE_CHECKING:
    from ftagent.agent import Agent

HEALTH_THRESHOLDS = ("pps", "bps", "udp_pps", "syn_pps", "icmp_pps")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def health(agent: Agent) -> dict[str, Any]:
    w = agent.last_window
    response = agent.response
    info = agent.dp.attach_info
    mitigator = agent.mitigator
    incident: dict[str, Any] | None = None
    if response is not None:
        inc = response.incident
        incident = {
            "uuid": inc.uuid,
            "family": inc.family,
            "subtype": inc.classification.subtype,
            "severity": inc.severity,
            "started_at": iso(inc.started_at),
            "peak_pps": round(inc.peak_pps),
            "rules": [s.describe() for s in inc.rules],
        }
    return {
        "status": "attack" if response is not None else "ok",
        "version": ftagent.__version__,
        "uptime_s": round(time.monotonic() - agent.started, 1),
        "interface": info.interface,
        "xdp_mode": info.mode,
        "prog_id": info.prog_id,
        "pps": round(w.metrics["pps"], 1) if w else 0.0,
        "bps": round(w.metrics["bps"], 1) if w else 0.0,
        "dropped_pps": round(w.dropped_pps, 1) if w else 0.0,
        "baseline_ready": agent.baseline.ready,
        "baseline_samples": agent.baseline.samples,
        "attack_active": response is not None,
        "mitigation_mode": mitigator.mode,
        "rules_active": mitigator.active_count(),
        "rules": [s.describe() for s in mitigator.rules],
        "thresholds": {
            k: round(v, 1) for k, v in agent.reference.thresholds.items() if k in HEALTH_THRESHOLDS
        },
        "incident": incident,
        # The control plane's orders against an attack spread over the node's groups.
        "fleet_orders": fleet_orders(agent),
        "incidents_total": sum(agent.incidents_by_family.values()),
        "link": link_health(agent.link.state),
        # Whether rules spare what the node's sockets want; else plain rules (the reason).
        "socket_guard": agent.guard.available,
        "socket_guard_reason": agent.guard.reason,
        # Clients that only exchanged UDP with the node become known sources (TC egress);
        # the error says why the kernel refused it (then a warning too).
        "udp_egress_learning": info.udp_egress_learning,
        "udp_egress_error": info.udp_egress_error,
        "tcp_syncookies": agent.syncookies.value,
        "warnings": warnings(agent),
    }


def fleet_orders(agent: Agent) -> list[dict[str, Any]]:
    """Each fleet order held: its incident, family, group, rules, when its rules expire
    unless renewed (every answer of the control plane renews them) and since when in force."""
    fleet = agent.fleet
    out = []
    for uuid, st in fleet.orders.items():
        left = fleet.expires_in(uuid)
        out.append(
            {
                "incident_uuid": uuid,
                "family": st.order.family,
                "group": st.order.group,
                "vectors": [v.family for v in st.order.vectors],
                "rules": [s.describe() for s in fleet.rules_of(uuid)],
                "mode": st.mode,
                "ttl_s": st.order.ttl_s,
                "expires_in_s": round(left, 1),
                "expires_at": iso(agent.wall() + left),
                "received_at": iso(st.received_at),
                "in_force_since": iso(st.in_force_since) if st.in_force_since else None,
                "notes": st.notes,
            }
        )
    return out


def link_health(state: LinkState) -> dict[str, Any]:
    """The uplink as the interface saw it in the last second (see ftagent.link)."""
    losses = state.losses
    return {
        "readable": state.readable,
        "rx_lost_pps": round(state.rx_lost_pps, 1),
        "saturated": state.saturated,
        "saturated_since": iso(state.saturated_since) if state.saturated_since else None,
        "rx_dropped": losses.dropped if losses else None,
        "rx_missed_errors": losses.missed if losses else None,
        "rx_fifo_errors": losses.fifo if losses else None,
        "error": state.error or None,
    }


def warnings(agent: Agent) -> list[str]:
    """What an operator should fix: mitigation works, but worse than it could."""
    out = []
    if not agent.guard.available:
        out.append(
            f"socket guard off ({agent.guard.reason}): plain rules, real users share "
            "the rate limits"
        )
    egress_error = agent.dp.attach_info.udp_egress_error
    if egress_error is not None:
        out.append(
            f"UDP egress learning off ({egress_error}): clients that only exchanged UDP "
            "with the node are not known sources"
        )
    if agent.syncookies.warning is not None:
        out.append(agent.syncookies.warning)
    return out


def gauges(agent: Agent) -> dict[str, Any]:
    w = agent.last_window
    b = agent.baseline
    return {
        "baseline": {
            m: {"avg": b.stat(m).avg, "0.95": b.stat(m).p95, "0.99": b.stat(m).p99}
            for m in ("pps", "bps")
        },
        "thresholds": dict(agent.reference.thresholds),
        "current": {"pps": w.metrics["pps"], "bps": w.metrics["bps"]} if w else {},
        "baseline_ready": int(b.ready),
        "attack_active": int(agent.response is not None),
        "sample_one_in": agent.sampler.sample_one_in,
        "uptime_s": time.monotonic() - agent.started,
        "incidents": dict(agent.incidents_by_family),
        "link": agent.link.state,
    }

"""An incident's `summary`: plain text assembled by fixed rules from its recorded fields."""

from __future__ import annotations

from control.incidents.schemas import FleetIncidentNode, GeoShare, MitigationRule, TopSource


def format_rate(value: float, unit: str) -> str:
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(max(int(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def build_summary(
    *,
    node_name: str,
    family: str,
    subtype: str | None,
    severity: str,
    status: str,
    peak_pps: float,
    peak_bps: float,
    duration_sec: int,
    protocols: dict[str, float],
    top_sources: list[TopSource],
    geo_origin: list[GeoShare],
    mitigation_rules: list[MitigationRule],
) -> str:
    kind = family.replace("_", " ") + (f" ({subtype.replace('_', ' ')})" if subtype else "")
    parts = [
        f"{severity.capitalize()} {kind} against {node_name}, "
        f"peak {format_rate(peak_pps, 'pps')} / {format_rate(peak_bps, 'bps')}."
    ]
    if protocols:
        proto, share = max(protocols.items(), key=lambda kv: kv[1])
        parts.append(f"{proto.upper()} carried {share:.0f}% of the attack packets.")
    if top_sources:
        top = max(top_sources, key=lambda s: s.pps)
        where = f" ({top.country})" if top.country else ""
        parts.append(f"{len(top_sources)} top sources recorded; largest {top.ip}{where}.")
    if geo_origin and geo_origin[0].country != "unknown":
        parts.append(f"Most traffic from {geo_origin[0].country} ({geo_origin[0].share:.0f}%).")
    if mitigation_rules:
        dropped = sum(r.dropped_packets for r in mitigation_rules)
        parts.append(f"{len(mitigation_rules)} mitigation rules, {dropped} packets dropped.")
    else:
        parts.append("No mitigation rule installed.")
    state = {
        "active": "ongoing for",
        "resolved": "lasted",
        "false_positive": "marked false positive after",
    }[status]
    parts.append(f"Attack {state} {format_duration(duration_sec)}.")
    return " ".join(parts)


def group_label(group: str) -> str:
    """How people read a fleet group: "prefix 203.0.113.0/24" or "the whole workspace"."""
    return "the whole workspace" if group == "workspace" else f"prefix {group}"


def _nodes_phrase(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


def build_fleet_summary(
    *,
    group: str,
    nodes: list[FleetIncidentNode],
    family: str,
    subtype: str | None,
    severity: str,
    status: str,
    peak_pps: float,
    peak_bps: float,
    duration_sec: int,
    protocols: dict[str, float],
) -> str:
    """A fleet incident's summary: the group and its nodes instead of one node."""
    kind = family.replace("_", " ") + (f" ({subtype.replace('_', ' ')})" if subtype else "")
    parts = [
        f"{severity.capitalize()} {kind} spread over {group_label(group)} "
        f"({_nodes_phrase(len(nodes))}), peak {format_rate(peak_pps, 'pps')} / "
        f"{format_rate(peak_bps, 'bps')} summed over the group."
    ]
    if protocols:
        proto, share = max(protocols.items(), key=lambda kv: kv[1])
        parts.append(f"{proto.upper()} carried {share:.0f}% of the attack packets.")
    in_force = [n for n in nodes if n.rules]
    if in_force:
        dropped = sum(n.dropped_packets for n in in_force)
        spared = sum(n.spared_packets for n in in_force)
        parts.append(
            f"Fleet rules in force on {_nodes_phrase(len(in_force))}: {dropped} packets "
            f"dropped, {spared} spared for the nodes' own users."
        )
    else:
        parts.append("No node has reported a fleet rule in force.")
    absent = sum(1 for n in nodes if n.state != "reporting")
    if absent:
        parts.append(f"{_nodes_phrase(absent)} missing or removed.")
    state = {
        "active": "ongoing for",
        "resolved": "lasted",
        "false_positive": "marked false positive after",
    }[status]
    parts.append(f"Attack {state} {format_duration(duration_sec)}.")
    return " ".join(parts)

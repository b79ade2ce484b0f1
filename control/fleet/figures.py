"""What the engine hands the incidents area: a group's attack as FleetFigures, the nodes'
orders' vectors, and the signature rule of each vector (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from control.incidents.fleet import FleetFigures
from ftcontract import agent_api
from ftcontract.classify import Classification, Vector
from ftcontract.vocabulary import FAMILIES, Family, Severity

PROTO_OF_GROUP: dict[str, int] = {"tcp": 6, "udp": 17, "icmp": 1}
# SYN without ACK; ACK alone; RST: (flags, mask) as the agent's signature rules match them
TCP_FLAGS_OF: dict[str, tuple[int, int]] = {
    "syn_flood": (0x02, 0x12),
    "ack_flood": (0x10, 0x17),
    "rst_flood": (0x04, 0x04),
}


def family(name: str) -> Family:
    for known in FAMILIES:
        if known == name:
            return known
    return "unknown"


def fleet_vectors(c: Classification) -> list[agent_api.FleetVector]:
    vectors = [
        agent_api.FleetVector(
            family=family(v.family),
            group=v.group,
            share=min(max(v.share, 0.0), 1.0),
            amp_port=v.amp_port,
        )
        for v in c.vectors[:8]
    ]
    return vectors or [agent_api.FleetVector(family=family(c.family), group="other")]


def classification_of(fam: str, vectors: list[agent_api.FleetVector]) -> Classification:
    """A stored incident's vectors back as a classification (a restarted engine)."""
    return Classification(
        fam, "", tuple(Vector(v.family, v.group, v.share, 0.0, v.amp_port) for v in vectors)
    )


def signature_rule(v: agent_api.FleetVector) -> agent_api.RuleFigure:
    proto = PROTO_OF_GROUP.get(v.group)
    flags = TCP_FLAGS_OF.get(v.family) if v.group == "tcp" else None
    words = ["signature"]
    if proto is not None:
        words.append(f"proto={proto}")
    if v.amp_port is not None:
        words.append(f"sport={v.amp_port}")
    if flags is not None:
        words.append(f"flags=0x{flags[0]:02x}/0x{flags[1]:02x}")
    return agent_api.RuleFigure(
        kind="signature",
        match=" ".join(words),
        proto=proto,
        src_port=v.amp_port,
        tcp_flags=flags[0] if flags else None,
        tcp_flags_mask=flags[1] if flags else None,
    )


def protocol_shares(metrics: Mapping[str, float]) -> dict[str, float]:
    """Percent of the group's packets per protocol class."""
    pps = metrics.get("pps", 0.0)
    if pps <= 0:
        return {}
    tcp, udp, icmp = (metrics.get(k, 0.0) for k in ("tcp_pps", "udp_pps", "icmp_pps"))
    shares = {"tcp": tcp, "udp": udp, "icmp": icmp, "other": max(0.0, pps - tcp - udp - icmp)}
    return {k: round(100.0 * v / pps, 1) for k, v in shares.items() if v > 0}


def fleet_figures(
    c: Classification,
    severity: Severity,
    *,
    peak_pps: float,
    peak_bps: float,
    current_pps: float,
    protocols: dict[str, float],
    threshold_pps: float | None,
    baseline_p99_pps: float | None,
) -> FleetFigures:
    vectors = fleet_vectors(c)
    return FleetFigures(
        family=family(c.family),
        subtype=c.subtype,
        severity=severity,
        peak_pps=peak_pps,
        peak_bps=peak_bps,
        current_pps=current_pps,
        protocols=protocols,
        vectors=vectors,
        rules=[signature_rule(v) for v in vectors],
        threshold_pps=threshold_pps,
        baseline_p99_pps=baseline_p99_pps,
    )

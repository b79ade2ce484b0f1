"""Name an attack from per-second rates: the one classifier definition both sides use.

The agent classifies one node's windows (`ftagent.evidence.classifier` adds what its sampled
packets tell); the control plane classifies the sum of a group's one-second points (fleet
detection). Both call `classify_rates` with the same metric names, so a fleet incident and
a node incident name the same traffic the same way.

Shares are taken of the *excess* over the baseline mean (rate - baseline avg, floored at
0), so that the normal traffic mix does not dilute the attack's signature (before the
baseline is ready the mean is 0 and raw rates are used).

1. Protocol groups tcp, udp, icmp, other (= total - tcp - udp - icmp): each group's share
   of the summed excess. A group is a vector when its share >= 0.30.
2. Each vector is named:
   - tcp: syn_flood when SYN is > 50 % of the TCP excess, ack_flood / rst_flood likewise
     for ACK / RST, else tcp_flood;
   - udp: an amplification family when one reflector source port carries > 50 % of the
     UDP excess whose port is readable (non-first fragments have none), and >= 10 % of
     all the UDP excess: 53 dns, 123 ntp, 389 cldap, 1900 ssdp, 11211 memcached,
     19 chargen; (161 snmp, 3702 ws-discovery, 5353 mdns have no family of their own:
     udp_flood, evidence `reflection`); else fragment_flood when fragments are > 60 % of
     the UDP excess; else udp_flood;
   - icmp: icmp_flood (fragment_flood when fragments dominate);
   - other: fragment_flood when fragments are > 60 % of it, else unknown.
3. One family -> that family; two or more -> multi_vector (subtype "a+b", by share);
   none -> unknown.

Metric names (what the baseline learns and the detector compares): pps, bps, tcp_pps,
udp_pps, icmp_pps, fragment_pps, syn_pps, ack_pps, rst_pps, amp_pps and amp_<port>_pps
(UDP from one amplification source port).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# UDP source ports counted one by one (amplification reflectors), as the kernel does.
AMP_PORTS: tuple[int, ...] = (19, 53, 123, 161, 389, 1900, 3702, 5353, 11211)
AMP_FAMILY: dict[int, str] = {
    53: "dns_amplification",
    123: "ntp_amplification",
    389: "cldap_amplification",
    1900: "ssdp_amplification",
    11211: "memcached_amplification",
    19: "chargen_amplification",
}
REFLECTION_NAME: dict[int, str] = {161: "snmp", 3702: "ws_discovery", 5353: "mdns"}
AMP_PORT_OF: dict[str, int] = {v: k for k, v in AMP_FAMILY.items()}

VECTOR_SHARE = 0.30
FLAG_SHARE = 0.50
AMP_SHARE = 0.50
# ... and the port must carry this share of ALL the UDP excess: in a flood of later
# fragments (no ports at all) the readable remainder is a few packets, and the node's
# own answers from port 53 would otherwise name it dns_amplification.
AMP_MIN_SHARE_OF_UDP = 0.10
FRAGMENT_SHARE = 0.60


def amp_metric(port: int) -> str:
    return f"amp_{port}_pps"


AMP_METRICS: tuple[str, ...] = tuple(amp_metric(p) for p in AMP_PORTS)
METRICS: tuple[str, ...] = (
    "pps",
    "bps",
    "tcp_pps",
    "udp_pps",
    "icmp_pps",
    "fragment_pps",
    "syn_pps",
    "ack_pps",
    "rst_pps",
    "amp_pps",
    *AMP_METRICS,
)


@dataclass(frozen=True, slots=True)
class Rates:
    """What is classified: per-second rates by METRICS name (a missing name is 0), the UDP
    rate by source port name ("53", ..., "other"), and the IPv6 share's numerator."""

    metrics: Mapping[str, float]
    udp_port_pps: Mapping[str, float]
    ipv6_pps: float = 0.0

    @property
    def mean_packet_size(self) -> float:
        pps = self.metrics.get("pps", 0.0)
        return self.metrics.get("bps", 0.0) / 8.0 / pps if pps > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Vector:
    family: str
    group: str  # tcp | udp | icmp | other
    share: float  # of the total excess
    pps: float  # excess packets per second of this vector
    amp_port: int | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    family: str
    subtype: str
    vectors: tuple[Vector, ...]
    evidence: dict[str, Any] = field(default_factory=dict)


def _excess(rate: float, base: float) -> float:
    return max(0.0, rate - base)


def _name_tcp(ex: Mapping[str, float]) -> tuple[str, dict[str, float]]:
    tcp = ex["tcp_pps"]
    ratios = {k: (ex[f"{k}_pps"] / tcp if tcp > 0 else 0.0) for k in ("syn", "ack", "rst")}
    for k in ("syn", "ack", "rst"):
        if ratios[k] > FLAG_SHARE:
            return f"{k}_flood", ratios
    return "tcp_flood", ratios


def _name_udp(
    r: Rates, base: Mapping[str, float], ex: Mapping[str, float]
) -> tuple[str, int | None, dict[str, Any]]:
    udp = ex["udp_pps"]
    ports = {
        int(p): _excess(pps, base.get(amp_metric(int(p)), 0.0))
        for p, pps in r.udp_port_pps.items()
        if p != "other"
    }
    readable = max(udp - ex["fragment_pps"], sum(ports.values()), 1e-9)
    port, port_pps = max(ports.items(), key=lambda kv: kv[1]) if ports else (0, 0.0)
    evidence: dict[str, Any] = {
        "amp_port": port if port_pps > 0 else None,
        "amp_port_share_of_udp": round(port_pps / readable, 3),
        "fragment_share_of_udp": round(ex["fragment_pps"] / udp, 3) if udp > 0 else 0.0,
    }
    if port_pps / readable > AMP_SHARE and port_pps >= AMP_MIN_SHARE_OF_UDP * udp:
        if port in AMP_FAMILY:
            return AMP_FAMILY[port], port, evidence
        evidence["reflection"] = REFLECTION_NAME.get(port, str(port))
        return "udp_flood", port, evidence
    if udp > 0 and ex["fragment_pps"] / udp > FRAGMENT_SHARE:
        return "fragment_flood", None, evidence
    return "udp_flood", None, evidence


def classify_rates(r: Rates, base: Mapping[str, float]) -> Classification:
    """`r`: the attack's rates; `base`: the baseline's mean per metric (empty when not
    ready). The subtype names only what rates can tell (reflection port, IP version);
    the agent refines it from its sampled packets."""
    m = {k: float(r.metrics.get(k, 0.0)) for k in METRICS}
    ex = {k: _excess(m[k], base.get(k, 0.0)) for k in m}
    other = _excess(
        m["pps"] - m["tcp_pps"] - m["udp_pps"] - m["icmp_pps"],
        base.get("pps", 0.0)
        - base.get("tcp_pps", 0.0)
        - base.get("udp_pps", 0.0)
        - base.get("icmp_pps", 0.0),
    )
    groups = {"tcp": ex["tcp_pps"], "udp": ex["udp_pps"], "icmp": ex["icmp_pps"], "other": other}
    total = sum(groups.values())
    evidence: dict[str, Any] = {
        "rates": {k: round(v, 1) for k, v in m.items() if v > 0 and not k.startswith("amp_")},
        "excess_pps": round(total, 1),
        "group_share": {g: round(v / total, 3) if total else 0.0 for g, v in groups.items()},
        "mean_packet_size": round(r.mean_packet_size, 1),
        "ipv6_share": round(r.ipv6_pps / m["pps"], 3) if m["pps"] > 0 else 0.0,
        "baseline_used": bool(base),
    }
    vectors: list[Vector] = []
    if total > 0:
        for group, value in sorted(groups.items(), key=lambda kv: -kv[1]):
            share = value / total
            if share < VECTOR_SHARE:
                continue
            amp_port = None
            if group == "tcp":
                family, ratios = _name_tcp(ex)
                evidence["tcp_flag_share"] = {k: round(v, 3) for k, v in ratios.items()}
            elif group == "udp":
                family, amp_port, udp_ev = _name_udp(r, base, ex)
                evidence.update(udp_ev)
            elif group == "icmp":
                frag = ex["fragment_pps"] / value if value else 0.0
                family = "fragment_flood" if frag > FRAGMENT_SHARE else "icmp_flood"
            else:
                frag = ex["fragment_pps"] / value if value else 0.0
                family = "fragment_flood" if frag > FRAGMENT_SHARE else "unknown"
            vectors.append(Vector(family, group, round(share, 3), round(value, 1), amp_port))
    families = list(dict.fromkeys(v.family for v in vectors if v.family != "unknown"))
    if len(families) >= 2:
        family = "multi_vector"
        subtype = "+".join(families)
    elif families:
        family = families[0]
        subtype = rate_subtype(family, vectors[0], evidence)
    else:
        family, subtype = "unknown", "unrecognised_mix"
    evidence["vectors"] = [
        {"family": v.family, "group": v.group, "share": v.share, "pps": v.pps} for v in vectors
    ]
    return Classification(family, subtype, tuple(vectors), evidence)


def rate_subtype(family: str, vector: Vector, evidence: Mapping[str, Any]) -> str:
    """The subtype rates alone can give: the reflection port, else the IP version."""
    if family.endswith("_amplification"):
        return f"reflection_sport_{vector.amp_port}"
    if family == "udp_flood" and "reflection" in evidence:
        return f"{evidence['reflection']}_reflection"
    return "ipv6" if evidence["ipv6_share"] > 0.5 else "ipv4"

"""Rule planning: a pure function of the classification and the sampled attack packets.

(`ftagent.mitigator` installs, renews and removes what is planned here.)


- amplification (reflector source port P): signature UDP sport=P, drop (P = 53 or 123,
  which the node may use itself: rate limit instead);
- any flood whose sampled sources are few (<= max_source_rules carrying >= source_share):
  exact source rules;
- syn_flood: signature TCP SYN-without-ACK, rate limit;
- ack_flood / rst_flood: signature TCP ACK-only / RST, rate limit;
- tcp_flood / udp_flood: signature on the protocol (+ the destination port when >= 80 % of
  the samples hit one), rate limit;
- icmp_flood: signature ICMP (and/or ICMPv6, as sampled), rate limit;
- fragment_flood / unknown: source rules, else prefix rules when few prefixes carry it.

Rate limits pass max(rate_limit_min_pps, multiplier x baseline p99 of the metric).
A source or prefix rule is never made for an address in the allow-list, the control
plane's address, the node's own addresses or a management prefix (prefixes: never one that
overlaps them); each refusal is recorded. Allow-listed, control-plane and management
networks are also put in the kernel allow-list, so signature rules spare them too.

Widening (`plan_widening`), when the incident response finds a vector still leaking:
new sources -> source rules, then sources -> prefixes (/24, /64), then the signature rule.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from ftagent.classifier import Classification, Vector
from ftagent.config import MitigationConfig
from ftagent.datapath import IPAddress, IPNetwork, RuleSpec
from ftagent.protection import Protected
from ftagent.samples import PacketInfo

T = TypeVar("T")

TCP_SYN, TCP_RST, TCP_ACK, TCP_FIN = 0x02, 0x04, 0x10, 0x01
RATE_LIMITED_AMP_PORTS = (53, 123)
MIN_SAMPLES_FOR_SOURCES = 20

# Which metric measures each family's traffic (leak checks, rate limits).
FAMILY_METRIC: dict[str, str] = {
    "syn_flood": "syn_pps",
    "ack_flood": "ack_pps",
    "rst_flood": "rst_pps",
    "tcp_flood": "tcp_pps",
    "udp_flood": "udp_pps",
    "icmp_flood": "icmp_pps",
    "fragment_flood": "fragment_pps",
    "unknown": "pps",
}


def vector_metric(v: Vector) -> str:
    if v.amp_port is not None:
        return f"amp_{v.amp_port}_pps"
    return FAMILY_METRIC.get(v.family, "pps")


def matches_vector(v: Vector) -> Callable[[PacketInfo], bool]:
    """Which sampled packets belong to this vector."""
    if v.amp_port is not None:
        port = v.amp_port
        return lambda p: p.proto == 17 and p.sport == port
    f = v.family
    if f == "syn_flood":
        return lambda p: (
            p.proto == 6
            and p.tcp_flags is not None
            and (p.tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN
        )
    if f == "ack_flood":
        return lambda p: (
            p.proto == 6
            and p.tcp_flags is not None
            and (p.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) == TCP_ACK
        )
    if f == "rst_flood":
        return lambda p: p.proto == 6 and p.tcp_flags is not None and bool(p.tcp_flags & TCP_RST)
    if f == "tcp_flood":
        return lambda p: p.proto == 6
    if f == "udp_flood":
        return lambda p: p.proto == 17
    if f == "icmp_flood":
        return lambda p: p.proto in (1, 58)
    if f == "fragment_flood":
        return lambda p: p.fragment
    return lambda p: p.ip_version != 0


def host_network(addr: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(f"{addr}/{addr.max_prefixlen}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A rule not made: its target overlaps a protected network."""

    target: str
    reason: str


@dataclass(slots=True)
class Plan:
    rules: list[RuleSpec] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: Plan) -> None:
        for r in other.rules:
            if r not in self.rules:
                self.rules.append(r)
        self.refused.extend(other.refused)
        self.notes.extend(other.notes)


def _concentrated(sources: Counter[T], max_n: int, share: float) -> list[T]:
    """The fewest busiest sources (at most max_n) that carry `share` of the samples."""
    total = sum(sources.values())
    if total < MIN_SAMPLES_FOR_SOURCES:
        return []
    picked: list[T] = []
    acc = 0
    for addr, count in sources.most_common(max_n):
        picked.append(addr)
        acc += count
        if acc / total >= share:
            return picked
    return []


def _prefix_of(addr: IPAddress, v4: int, v6: int) -> IPNetwork:
    return ipaddress.ip_network(f"{addr}/{v4 if addr.version == 4 else v6}", strict=False)


def source_rules(nets: Iterable[IPNetwork], protected: Protected, plan: Plan, kind: str) -> None:
    for net in nets:
        reason = protected.reason_for(net)
        if reason is not None:
            plan.refused.append(Refusal(str(net), reason))
            continue
        spec = (
            RuleSpec(kind="src", network=net)
            if kind == "src"
            else RuleSpec(kind="prefix", network=net)
        )
        if spec not in plan.rules:
            plan.rules.append(spec)


def plan_vector(
    v: Vector,
    packets: list[PacketInfo],
    cfg: MitigationConfig,
    protected: Protected,
    rate_limit: Callable[[str], int],
) -> Plan:
    """The narrowest rules for one attack vector."""
    plan = Plan()
    mine = [p for p in packets if matches_vector(v)(p)]
    sources: Counter[IPAddress] = Counter(p.src for p in mine if p.src is not None)
    if v.amp_port is not None:
        port = v.amp_port
        rate = rate_limit(vector_metric(v)) if port in RATE_LIMITED_AMP_PORTS else None
        plan.rules.append(RuleSpec(kind="signature", proto=17, src_port=port, rate_pps=rate))
        plan.notes.append(f"amplification from UDP source port {port}")
        return plan
    few = _concentrated(sources, cfg.max_source_rules, cfg.source_share)
    if few:
        source_rules((host_network(a) for a in few), protected, plan, "src")
        plan.notes.append(f"{len(few)} sources carry >= {cfg.source_share:.0%} of {v.family}")
        if plan.rules:
            return plan
    limit = rate_limit(vector_metric(v))
    dports: Counter[int] = Counter(p.dport for p in mine if p.dport is not None)
    focus = None
    if dports:
        port, count = dports.most_common(1)[0]
        if count / sum(dports.values()) >= 0.8 and len(mine) >= MIN_SAMPLES_FOR_SOURCES:
            focus = port
    f = v.family
    if f == "syn_flood":
        plan.rules.append(
            RuleSpec(
                kind="signature",
                proto=6,
                tcp_flags=TCP_SYN,
                tcp_flags_mask=TCP_SYN | TCP_ACK,
                rate_pps=limit,
            )
        )
    elif f == "ack_flood":
        plan.rules.append(
            RuleSpec(
                kind="signature",
                proto=6,
                tcp_flags=TCP_ACK,
                tcp_flags_mask=TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN,
                rate_pps=limit,
            )
        )
    elif f == "rst_flood":
        plan.rules.append(
            RuleSpec(
                kind="signature", proto=6, tcp_flags=TCP_RST, tcp_flags_mask=TCP_RST, rate_pps=limit
            )
        )
    elif f in ("tcp_flood", "udp_flood"):
        proto = 6 if f == "tcp_flood" else 17
        plan.rules.append(RuleSpec(kind="signature", proto=proto, dst_port=focus, rate_pps=limit))
    elif f == "icmp_flood":
        versions = {p.ip_version for p in mine} or {4}
        for ver in sorted(versions):
            proto = 1 if ver == 4 else 58
            plan.rules.append(RuleSpec(kind="signature", proto=proto, rate_pps=limit))
    else:
        prefixes: Counter[IPNetwork] = Counter(
            _prefix_of(a, cfg.widen_prefix_v4, cfg.widen_prefix_v6) for a in sources.elements()
        )
        few_prefixes = _concentrated(prefixes, cfg.max_source_rules, cfg.source_share)
        if few_prefixes:
            source_rules(few_prefixes, protected, plan, "prefix")
        else:
            plan.notes.append(f"no narrow rule fits {f}: sources are many and spread")
    return plan


def plan_rules(
    cls: Classification,
    packets: list[PacketInfo],
    cfg: MitigationConfig,
    protected: Protected,
    rate_limit: Callable[[str], int],
) -> Plan:
    plan = Plan()
    for v in cls.vectors:
        plan.extend(plan_vector(v, packets, cfg, protected, rate_limit))
    if len(plan.rules) > cfg.max_rules:
        plan.notes.append(f"plan cut to max_rules={cfg.max_rules} (had {len(plan.rules)})")
        plan.rules = plan.rules[: cfg.max_rules]
    return plan


def plan_widening(
    v: Vector,
    passed: list[PacketInfo],
    current: list[RuleSpec],
    cfg: MitigationConfig,
    protected: Protected,
    rate_limit: Callable[[str], int],
) -> Plan:
    """Rules to add when this vector's attack still gets through `current`.

    `passed`: sampled packets the kernel let through since the last change."""
    plan = Plan()
    mine = [p for p in passed if matches_vector(v)(p)]
    sources: Counter[IPAddress] = Counter(p.src for p in mine if p.src is not None)
    few = _concentrated(sources, cfg.max_source_rules, cfg.source_share)
    if few:
        source_rules((host_network(a) for a in few), protected, plan, "src")
        plan.rules = [r for r in plan.rules if r not in current]
        if plan.rules:
            plan.notes.append(f"widened: {len(plan.rules)} more sources still passing")
            return plan
    prefixes: Counter[IPNetwork] = Counter(
        _prefix_of(a, cfg.widen_prefix_v4, cfg.widen_prefix_v6) for a in sources.elements()
    )
    few_prefixes = _concentrated(prefixes, cfg.max_source_rules, cfg.source_share)
    if few_prefixes:
        source_rules(few_prefixes, protected, plan, "prefix")
        plan.rules = [r for r in plan.rules if r not in current]
        if plan.rules:
            plan.notes.append(f"widened: sources to {len(plan.rules)} prefixes")
            return plan
    # Sources too spread: fall back to the vector's signature rule if not there yet.
    sig = plan_vector(v, [], cfg, protected, rate_limit)
    plan.rules = [r for r in sig.rules if r not in current]
    if plan.rules:
        plan.notes.append("widened: sources too spread, signature rule")
    else:
        plan.notes.append("cannot widen further")
    return plan

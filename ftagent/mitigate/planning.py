"""Rule planning: a function of the classification, the sampled attack packets and what
the socket guard allows (its one question to the kernel: does a UDP port have a service
socket). `ftagent.mitigate.mitigator` installs, renews and removes what is planned here.

- any flood whose sampled sources are few (<= max_source_rules carrying >= source_share),
  amplification excepted: exact source rules;
- otherwise the vector's signature rules (`ftagent.evidence.signatures`): socket-aware when the
  data path has the socket guard (drop what no socket of the node wants, pass what one
  does, rate-limit only where a socket cannot tell: a UDP service's port, ICMP echo),
  today's class rate limits when it has not;
- fragment_flood / unknown: prefix rules when few prefixes carry it; else (fragments,
  guard on) the fragment rule.

Rate limits pass max(rate_limit_min_pps, multiplier x baseline p99 of the metric); a rule
that passes known sources gives the sources first seen during the attack their own, small
budget instead (`newcomer_budget`): a share of the vector's rate, so the share of the
attack let in stays bounded however large the flood.
A source or prefix rule is never made for an address in the allow-list, the control
plane's address, the node's own addresses or a management prefix (prefixes: never one that
overlaps them); each refusal is recorded. Allow-listed, control-plane and management
networks are also put in the kernel allow-list, so signature rules spare them too.

Widening (`plan_widening`), when the incident response finds a vector still leaking:
new sources -> source rules, then sources -> prefixes (/24, /64), then the signature rule,
then (guard on) a guarded UDP rule that spares any socket is tightened to connected
sockets + known sources + a rate limit for the rest (`signatures.tightened`).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from ftagent.config import MitigationConfig
from ftagent.datapath import IPAddress, IPNetwork, RuleSpec
from ftagent.evidence.classifier import Classification, Vector
from ftagent.evidence.samples import PacketInfo
from ftagent.evidence.signatures import (
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    guarded,
    plain,
    tightened,
)
from ftagent.mitigate.guard import NO_GUARD, SocketGuard
from ftagent.mitigate.protection import Protected

T = TypeVar("T")

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


def _focus_port(mine: list[PacketInfo]) -> int | None:
    """The destination port >= 80 % of the vector's samples hit, if any."""
    dports: Counter[int] = Counter(p.dport for p in mine if p.dport is not None)
    if not dports or len(mine) < MIN_SAMPLES_FOR_SOURCES:
        return None
    port, count = dports.most_common(1)[0]
    return port if count / sum(dports.values()) >= 0.8 else None


def newcomer_budget(v: Vector, cfg: MitigationConfig) -> int:
    """What the sources first seen during the attack share (pps) under a rule that passes
    known sources: `newcomer_share` of the vector's measured rate, at least
    `newcomer_min_pps`. A class rate limit (rate_limit_min_pps, 1,000 by default) let about
    2.5 % of a 40 kpps flood in; this keeps the share near newcomer_share. Real clients that
    are new lose little more: one that sends again passes on its own budget in the kernel
    (newcomer_source_pps)."""
    return max(cfg.newcomer_min_pps, int(cfg.newcomer_share * v.pps))


def plan_vector(
    v: Vector,
    packets: list[PacketInfo],
    cfg: MitigationConfig,
    protected: Protected,
    rate_limit: Callable[[str], int],
    guard: SocketGuard = NO_GUARD,
) -> Plan:
    """The narrowest rules for one attack vector."""
    plan = Plan()
    mine = [p for p in packets if matches_vector(v)(p)]
    sources: Counter[IPAddress] = Counter(p.src for p in mine if p.src is not None)
    if v.amp_port is None:
        few = _concentrated(sources, cfg.max_source_rules, cfg.source_share)
        if few:
            source_rules((host_network(a) for a in few), protected, plan, "src")
            plan.notes.append(f"{len(few)} sources carry >= {cfg.source_share:.0%} of {v.family}")
            if plan.rules:
                return plan
    if v.family in ("fragment_flood", "unknown"):
        prefixes: Counter[IPNetwork] = Counter(
            _prefix_of(a, cfg.widen_prefix_v4, cfg.widen_prefix_v6) for a in sources.elements()
        )
        few_prefixes = _concentrated(prefixes, cfg.max_source_rules, cfg.source_share)
        if few_prefixes:
            source_rules(few_prefixes, protected, plan, "prefix")
            if plan.rules:
                return plan
    limit = rate_limit(vector_metric(v))
    focus = _focus_port(mine)
    if guard.available:
        rules, note = guarded(v, mine, focus, newcomer_budget(v, cfg), guard.udp_bound)
        if note:
            plan.notes.append(note)
    else:
        rules = plain(v, mine, focus, limit)
        if v.amp_port is not None:
            plan.notes.append(f"amplification from UDP source port {v.amp_port}")
    plan.rules.extend(r for r in rules if r not in plan.rules)
    if not rules and not plan.rules:
        plan.notes.append(f"no narrow rule fits {v.family}: sources are many and spread")
    return plan


def plan_rules(
    cls: Classification,
    packets: list[PacketInfo],
    cfg: MitigationConfig,
    protected: Protected,
    rate_limit: Callable[[str], int],
    guard: SocketGuard = NO_GUARD,
) -> Plan:
    plan = Plan()
    for v in cls.vectors:
        plan.extend(plan_vector(v, packets, cfg, protected, rate_limit, guard))
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
    guard: SocketGuard = NO_GUARD,
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
    sig = plan_vector(v, [], cfg, protected, rate_limit, guard)
    # (a rule with the same match counts as there: it may be a tightened one)
    plan.rules = [r for r in sig.rules if not any(r.same_match(c) for c in current)]
    if plan.rules:
        plan.notes.append("widened: sources too spread, signature rule")
        return plan
    # The signature is in and the attack still passes it: tighten a guard that lets it.
    limit = newcomer_budget(v, cfg)
    for spec in current:
        tight = tightened(spec, limit) if matches_rule(v, spec) else None
        if tight is not None and tight not in current:
            plan.rules.append(tight)
    if plan.rules:
        plan.notes.append(
            "widened: a UDP rule sparing any socket lets the flood through; now only "
            "connected sockets and known sources pass, new sources share "
            f"{limit} pps"
        )
    else:
        plan.notes.append("cannot widen further")
    return plan


def matches_rule(v: Vector, spec: RuleSpec) -> bool:
    """Whether `spec` is one of the signature rules planned for `v` (same protocol, and
    the amplification port for an amplification vector)."""
    if spec.kind != "signature":
        return False
    if v.amp_port is not None:
        return spec.proto == 17 and spec.src_port == v.amp_port
    wanted = {
        "udp_flood": (17,),
        "fragment_flood": (17, 6, 1, 58),
        "tcp_flood": (6,),
        "syn_flood": (6,),
        "ack_flood": (6,),
        "rst_flood": (6,),
        "icmp_flood": (1, 58),
    }.get(v.family, ())
    return spec.proto in wanted

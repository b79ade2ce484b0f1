"""The signature rules for one attack vector: socket-aware when the socket guard is on,
today's plain rules (rate limits on a class) when the kernel lacks the helpers.

With the guard (`guarded`), the kernel decides per packet whether the node wants it:
- amplification (UDP from reflector port P, 53 and 123 included): sport=P,
  spare=connected, drop. Answers to the node's own queries (a connected socket) pass.
- syn_flood: SYN-without-ACK, spare=sockets, drop. SYNs to a listening port go on to the
  kernel's own SYN cookies (chosen by measurement: bench_datapath's "SYN flood" table,
  real connects succeed at the lab's top SYN rate, for a lookup instead of the XDP
  cookie's generation per SYN); SYNs to closed ports drop.
- ack_flood / rst_flood / tcp_flood (FIN floods classify as tcp_flood): the flag class
  (tcp_flood: all TCP, to the focused port if any), spare=sockets, drop: segments of the
  node's connections pass, the rest matches no socket and drops. No rate limit.
- udp_flood to one port that has a bound service socket (a "udp service flood"): that
  port, spare=connected + spare_known + rate limit: sources that talked with the node
  before the attack pass; sources first seen during it share the newcomers' budget (a
  share of the vector's rate, `planning.newcomer_budget`), and one that sends again gets
  its own small budget in the kernel (a socket cannot tell a real new client from a
  spoofed one there; a random spoofed address almost never repeats).
- udp_flood otherwise (random ports, or one port with no service): spare=sockets, drop:
  datagrams for a bound or connected socket pass, closed ports drop.
- icmp_flood: per IP version, rate limit, spare=sockets + spare_known: errors about the
  node's own flows always pass (path-MTU discovery), known sources pass, echo requests
  of new sources share the newcomers' budget (and a repeating one its own).
- fragment_flood: fragments=True, spare=sockets, drop: a first fragment a socket wants
  makes its later fragments pass (the node's large answers); the rest drops. Dropped,
  not rate-limited: the guard already passes the fragments the node wants, and every
  flood fragment let through holds a reassembly slot until it times out.

Without the guard (`plain`): today's rules, rate limits on the class, and amplification
from 53/123 (ports the node itself uses) rate-limited instead of dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from ftagent.datapath import RuleSpec, SpareMode
from ftagent.evidence.classifier import Vector
from ftagent.evidence.samples import PacketInfo

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
# Without the guard only: reflector ports the node itself uses (its DNS and NTP clients).
PLAIN_RATE_LIMITED_AMP_PORTS = (53, 123)
FRAGMENT_PROTOS = (17, 6, 1, 58)

# family -> (tcp_flags, tcp_flags_mask): SYN without ACK; ACK alone; any RST
TCP_FLAG_MATCH: dict[str, tuple[int, int]] = {
    "syn_flood": (TCP_SYN, TCP_SYN | TCP_ACK),
    "ack_flood": (TCP_ACK, TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN),
    "rst_flood": (TCP_RST, TCP_RST),
}


def _flag_rule(family: str, rate_pps: int | None = None, spare: SpareMode = "none") -> RuleSpec:
    flags, mask = TCP_FLAG_MATCH[family]
    return RuleSpec(
        "signature", proto=6, tcp_flags=flags, tcp_flags_mask=mask, rate_pps=rate_pps, spare=spare
    )


def _icmp_protos(mine: list[PacketInfo]) -> list[int]:
    versions = {p.ip_version for p in mine} or {4}
    return [1 if ver == 4 else 58 for ver in sorted(versions) if ver in (4, 6)] or [1]


def plain(v: Vector, mine: list[PacketInfo], focus: int | None, limit: int) -> list[RuleSpec]:
    """Today's rules (no socket guard): [] for families that have no signature."""
    if v.amp_port is not None:
        rate = limit if v.amp_port in PLAIN_RATE_LIMITED_AMP_PORTS else None
        return [RuleSpec("signature", proto=17, src_port=v.amp_port, rate_pps=rate)]
    f = v.family
    if f in TCP_FLAG_MATCH:
        return [_flag_rule(f, rate_pps=limit)]
    if f in ("tcp_flood", "udp_flood"):
        proto = 6 if f == "tcp_flood" else 17
        return [RuleSpec("signature", proto=proto, dst_port=focus, rate_pps=limit)]
    if f == "icmp_flood":
        return [RuleSpec("signature", proto=p, rate_pps=limit) for p in _icmp_protos(mine)]
    return []


def guarded(
    v: Vector,
    mine: list[PacketInfo],
    focus: int | None,
    newcomer_pps: int,
    udp_bound: Callable[[int], bool],
) -> tuple[list[RuleSpec], str]:
    """Socket-aware rules and a note saying what they spare ([] when the family has no
    signature: unknown). `newcomer_pps`: what sources first seen during the attack share
    under a rule that passes known sources."""
    if v.amp_port is not None:
        port = v.amp_port
        rule = RuleSpec("signature", proto=17, src_port=port, spare="connected")
        return [rule], f"amplification from UDP port {port}: answers to the node's own sockets pass"
    f = v.family
    if f == "syn_flood":
        return [
            _flag_rule(f, spare="sockets")
        ], "SYNs to listening ports go to the kernel's SYN cookies, the rest drops"
    if f in TCP_FLAG_MATCH:
        return [
            _flag_rule(f, spare="sockets")
        ], f"{f}: segments of the node's connections pass, the rest drops"
    if f == "tcp_flood":
        rule = RuleSpec("signature", proto=6, dst_port=focus, spare="sockets")
        return [rule], "tcp_flood: segments of the node's connections and SYNs to listeners pass"
    if f == "udp_flood":
        if focus is not None and udp_bound(focus):
            rule = RuleSpec(
                "signature",
                proto=17,
                dst_port=focus,
                spare="connected",
                spare_known=True,
                rate_pps=newcomer_pps,
            )
            return [rule], (
                f"udp service flood on port {focus}: known sources and the node's own "
                f"sockets pass, new sources share {newcomer_pps} pps"
            )
        rule = RuleSpec("signature", proto=17, dst_port=focus, spare="sockets")
        return [rule], "udp_flood: datagrams for the node's sockets pass, closed ports drop"
    if f == "icmp_flood":
        rules = [
            RuleSpec("signature", proto=p, rate_pps=newcomer_pps, spare="sockets", spare_known=True)
            for p in _icmp_protos(mine)
        ]
        return rules, (
            f"icmp_flood: errors about the node's flows and known sources pass, the rest "
            f"shares {newcomer_pps} pps"
        )
    if f == "fragment_flood":
        seen = {p.proto for p in mine if p.proto in FRAGMENT_PROTOS}
        protos = [p for p in FRAGMENT_PROTOS if p in seen] or [17]
        rules = [RuleSpec("signature", proto=p, fragments=True, spare="sockets") for p in protos]
        return rules, "fragment_flood: fragments of datagrams the node's sockets want pass"
    return [], ""


def tightened(spec: RuleSpec, newcomer_pps: int) -> RuleSpec | None:
    """The next step for a guarded rule that still lets the attack through, or None.

    Only a UDP rule sparing any socket can pass a spoofed flood at scale (datagrams to a
    bound service port); it becomes connected-only, known sources first, new sources
    share `newcomer_pps`. Same match, so the kernel updates the rule in its place."""
    if spec.kind == "signature" and spec.proto == 17 and spec.spare == "sockets":
        return RuleSpec(
            "signature",
            proto=17,
            src_port=spec.src_port,
            dst_port=spec.dst_port,
            dst=spec.dst,
            fragments=spec.fragments,
            spare="connected",
            spare_known=True,
            rate_pps=newcomer_pps,
        )
    return None


def spared_may_be_attack(spec: RuleSpec) -> bool:
    """Whether what this rule spares may be attack traffic (then it counts as a leak).

    A UDP rule sparing any socket passes whatever is sent to a bound port, spoofed or
    not. The rest do not count: TCP segments pass only for a connection's exact 4-tuple,
    SYNs to a listener are the kernel's SYN cookies' job (by design), connected-UDP
    answers need the exact 4-tuple, ICMP errors quote one of the node's own flows, and
    known sources talked with the node before the attack."""
    return spec.proto == 17 and spec.spare == "sockets"

"""The contract between the agent's logic and the kernel data path.

`ftagent.bpf` implements `Datapath` over the XDP program's maps; the detector, classifier,
mitigator and capture code depend only on this module. Counter names here are the
vocabulary used everywhere (metrics labels, classifier evidence, reports), so they are
defined once, in the same order as the index constants in `bpf/ftshared.h`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal, Protocol

# The kernel counts these one by one (bpf/ftshared.h); the classifier names them.
from ftcontract.classify import AMP_PORTS as AMP_PORTS

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Packet/byte counter classes (one slot each in the per-CPU class array).
CLASSES: tuple[str, ...] = (
    "total",
    "ipv4",
    "ipv6",
    "other_l3",
    "tcp",
    "udp",
    "icmp",
    "other_l4",
    "fragment",
)
TCP_FLAG_CLASSES: tuple[str, ...] = ("syn", "synack", "ack", "rst", "fin", "other")
# UDP source ports tracked individually (amplification reflectors); the rest is "other".
AMP_PORT_NAMES: tuple[str, ...] = (*(str(p) for p in AMP_PORTS), "other")
# Upper bounds (bytes, inclusive) of the packet-size histogram; the last bucket is "larger".
SIZE_BOUNDS: tuple[int, ...] = (64, 128, 256, 512, 1024, 1500)
SIZE_BUCKETS: tuple[str, ...] = (*(f"le_{b}" for b in SIZE_BOUNDS), "gt_1500")
# What happened to each packet; the kernel counts exactly one verdict per packet.
# - passed: no active rule matched (or a rate-limit rule's bucket still had a token).
# - drop_src / drop_prefix / drop_signature: dropped by that kind of rule.
# - rate_limited: a rate-limit rule matched and its token bucket was empty.
# - allowlisted: an active rule matched, i.e. would have dropped or rate-limited the
#   packet, but its source is on the allow-list, so it passed. The allow-list is
#   consulted only on a rule match: allow-listed traffic no rule matches counts as passed.
# - malformed: headers cut short or inconsistent, and no rule dropped it (passed on:
#   fail open).
VERDICTS: tuple[str, ...] = (
    "passed",
    "drop_src",
    "drop_prefix",
    "drop_signature",
    "rate_limited",
    "allowlisted",
    "malformed",
)


@dataclass(frozen=True, slots=True)
class Counters:
    """Cumulative totals since the program was loaded, summed over CPUs.

    Every dict is keyed by the names above and holds every name (zero when unseen).

    The class, byte, TCP-flag, UDP-port and size counters count every packet the program
    sees BEFORE any rule is applied: a packet a rule drops is still counted in them. The
    agent's detector depends on this: while mitigation drops an attack, these counters
    still show it, so the incident stays active until the attack itself stops (if rules
    applied first, a mitigated attack would look over and be resolved early). What the
    rules did is counted separately, in `verdicts` / `verdict_bytes` (see VERDICTS).
    """

    packets: dict[str, int]  # CLASSES
    bytes: dict[str, int]  # CLASSES
    tcp_flags: dict[str, int]  # TCP_FLAG_CLASSES (packets)
    udp_src_port_packets: dict[str, int]  # AMP_PORT_NAMES
    udp_src_port_bytes: dict[str, int]  # AMP_PORT_NAMES
    sizes: dict[str, int]  # SIZE_BUCKETS (packets)
    verdicts: dict[str, int]  # VERDICTS (packets)
    verdict_bytes: dict[str, int]  # VERDICTS (bytes)
    read_at_ns: int  # CLOCK_MONOTONIC when read (same clock as bpf_ktime_get_ns)


@dataclass(frozen=True, slots=True)
class SourceStat:
    """One entry of the kernel's top-sources LRU map."""

    address: IPAddress
    packets: int
    bytes: int
    last_seen_ns: int  # bpf_ktime_get_ns() of the last packet


RuleKind = Literal["src", "prefix", "signature"]
# What a signature rule spares (passes, and counts as spared) instead of dropping:
# - none: nothing; every match is dropped or rate-limited.
# - sockets: what a socket of the node wants. TCP: segments of existing connections
#   (established, time-wait, handshake under way); at a listener a SYN (the kernel's own
#   SYN cookies answer it) and an ACK carrying a valid SYN cookie; nothing to a port
#   without a socket. UDP: datagrams a socket would receive (connected or bound).
#   ICMP/ICMPv6: errors (unreachable, fragmentation needed, packet too big, time
#   exceeded, parameter problem) quoting one of the node's own connections or UDP
#   sockets; echo requests and the rest are not spared. Fragments: a first fragment is
#   judged by its header; the later fragments of a spared datagram pass too.
# - connected: UDP only: datagrams for a connected socket (answers to the node's own
#   queries: its DNS, NTP and other clients); datagrams to a bound-only server port drop.
SpareMode = Literal["none", "sockets", "connected"]
SPARE_MODES: tuple[SpareMode, ...] = ("none", "sockets", "connected")


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a drop rule matches. Exactly the fields for its kind are set.

    - src: `network` is a host (/32 or /128).
    - prefix: `network` is any prefix.
    - signature: `proto` (6, 17, 1, 58) plus any of src_port, dst_port,
      tcp_flags/tcp_flags_mask (match when flags & mask == tcp_flags), dst;
      `fragments=True` matches only fragments (IPv4 fragments, first or not, and IPv6
      packets with a fragment header), and then takes no ports or flags.
    `rate_pps` set: a token bucket passes up to that many packets per second and drops
    the rest; None: drop everything that matches.
    `spare` (signature rules): packets the node's sockets want pass before the rule drops
    or rate-limits anything (see SpareMode); they are counted as spared, per rule.
    `spare_known` (signature rules): packets from known sources pass too: sources the
    data path saw in an established TCP connection or answering a connected UDP socket
    (learned on 1 TCP/UDP packet in `learn_one_in` while they pass), peers the node sent
    UDP to (the TC egress program, 1 datagram in `egress_learn_one_in`; paused while such
    a rule is in force), or added by user space. Sources first seen during the attack:
    the first packet of each shares the rule's rate_pps; one that sends again passes up to
    newcomer_source_pps of its own (not counted as spared: only known sources and what
    sockets want are).
    """

    kind: RuleKind
    network: IPNetwork | None = None
    proto: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    tcp_flags: int | None = None
    tcp_flags_mask: int | None = None
    dst: IPAddress | None = None
    rate_pps: int | None = None
    spare: SpareMode = "none"
    fragments: bool = False
    spare_known: bool = False

    def same_match(self, other: RuleSpec) -> bool:
        """Whether the kernel holds both as ONE rule: a signature rule is found by its match
        alone (installing one with another rate or spare updates it in place); a source or
        prefix rule by its network."""
        if self.kind != other.kind:
            return False
        if self.kind != "signature":
            return self.network == other.network
        return (
            self.proto, self.src_port, self.dst_port, self.tcp_flags, self.tcp_flags_mask,
            self.dst, self.fragments,
        ) == (
            other.proto, other.src_port, other.dst_port, other.tcp_flags, other.tcp_flags_mask,
            other.dst, other.fragments,
        )  # fmt: skip

    def describe(self) -> str:
        """Short human text, used in logs and `ftagent rules`."""
        if self.kind in ("src", "prefix"):
            text = f"{self.kind} {self.network}"
        else:
            parts = [f"proto={self.proto}"]
            if self.src_port is not None:
                parts.append(f"sport={self.src_port}")
            if self.dst_port is not None:
                parts.append(f"dport={self.dst_port}")
            if self.tcp_flags_mask is not None:
                parts.append(f"flags={self.tcp_flags:#04x}/{self.tcp_flags_mask:#04x}")
            if self.dst is not None:
                parts.append(f"dst={self.dst}")
            if self.fragments:
                parts.append("fragments")
            text = "signature " + " ".join(parts)
        if self.rate_pps is not None:
            text += f" rate<={self.rate_pps}pps"
        if self.spare != "none":
            text += f" spare={self.spare}"
        if self.spare_known:
            text += " spare=known"
        return text


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule as installed in the kernel."""

    spec: RuleSpec
    expires_ns: int  # kernel time (bpf_ktime_get_ns) after which the program ignores it
    dropped_packets: int = 0
    dropped_bytes: int = 0
    # matched, but passed because a socket of the node wanted them (see RuleSpec.spare)
    spared_packets: int = 0
    spared_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampled packet from the ring buffer."""

    timestamp_ns: int  # bpf_ktime_get_ns()
    wire_len: int
    verdict: str  # one of VERDICTS
    data: bytes  # the first min(wire_len, 128) bytes, from the Ethernet header on


@dataclass(frozen=True, slots=True)
class Wake:
    """The kernel's wake-up: one CPU reached its packet count in one short slot of the
    coarse clock (bpf/ftshared.h, struct ft_wake), so a window is due now."""

    slot_ns: int  # the slot's start (CLOCK_MONOTONIC ns, coarse)
    at_ns: int  # when the count was reached (coarse)
    cpu: int
    packets: int  # the count reached


@dataclass(slots=True)
class AttachInfo:
    interface: str
    ifindex: int
    mode: Literal["native", "generic"]
    prog_id: int
    extra: dict[str, str] = field(default_factory=dict)
    # BPF helpers the socket-aware rules need that this kernel lacks (name, e.g.
    # "bpf_sk_lookup_udp"); when any is missing the program is built without them and
    # rules with spare != "none" are refused: the agent falls back to plain rules.
    missing_helpers: tuple[str, ...] = ()
    # Known sources from the UDP the node sends (a TC egress program beside XDP). Off
    # when configured off (egress_learn_one_in = 0) or without the socket guard; when the
    # kernel refused it, `udp_egress_error` says why (then a client that only exchanged
    # UDP with the node is never known, and /health warns).
    udp_egress_learning: bool = False
    udp_egress_error: str | None = None

    @property
    def socket_guard(self) -> bool:
        """Whether rules may spare what the node's sockets want (RuleSpec.spare)."""
        return not self.missing_helpers


class Datapath(Protocol):
    """The kernel side as the agent sees it. All TTLs are seconds; all times monotonic ns."""

    @property
    def attach_info(self) -> AttachInfo: ...

    def read_counters(self) -> Counters: ...

    def top_sources(self, limit: int) -> list[SourceStat]: ...

    def age_sources(self, older_than_ns: int) -> int:
        """Delete top-source entries not seen since `older_than_ns`; returns how many."""
        ...

    def add_rule(self, spec: RuleSpec, ttl_s: float) -> Rule:
        """Install (or renew, if the same spec exists) a rule expiring ttl_s from now."""
        ...

    def remove_rule(self, spec: RuleSpec) -> bool: ...

    def list_rules(self) -> list[Rule]: ...

    def set_allowlist(self, networks: list[IPNetwork]) -> None:
        """Replace the allow-list with exactly these networks."""
        ...

    def set_sample_rate(self, one_in: int) -> None:
        """Send one packet in `one_in` to user space; 0 turns sampling off."""
        ...

    def poll_samples(self, max_items: int = 4096) -> list[Sample]:
        """Drain what the ring buffer holds now, without blocking."""
        ...

    def set_wake_pps(self, pps: float) -> None:
        """Wake `wait_wake` as soon as the packet rate reaches about `pps` (counted per CPU
        in short slots, the rate's share per CPU); 0 turns wake-ups off."""
        ...

    def wait_wake(self, timeout_s: float) -> list[Wake]:
        """Block up to `timeout_s` for the kernel's wake-ups (none: a timeout). Called from
        one thread of its own; the only call that may run beside the others."""
        ...

    def close(self) -> None:
        """Detach the program and release maps (pinned maps are removed)."""
        ...

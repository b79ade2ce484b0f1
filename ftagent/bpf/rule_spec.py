"""Rule specs as the kernel stores them: which specs are installable (`validate_spec`)
and the match/guard bits of a signature rule (FT_SIG_* / FT_GUARD_* in bpf/ftshared.h;
tests/bpf/test_layout.py checks these copies of the header's bit values)."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

from ftagent.datapath import IPAddress, RuleSpec, SpareMode

# Map names, as declared in bpf/ftmaps.h.
RULE_MAPS = ("rsrc_v4", "rsrc_v6", "rpfx_v4", "rpfx_v6")
SIG_MATCH_SPORT, SIG_MATCH_DPORT, SIG_MATCH_FLAGS, SIG_MATCH_DST4, SIG_MATCH_DST6 = (
    0x01,
    0x02,
    0x04,
    0x08,
    0x10,
)
SIG_MATCH_FRAG = 0x20
SIG_PROTOS = (1, 6, 17, 58)
# RuleSpec.spare -> ft_sig_rule.guard bits (FT_GUARD_* in bpf/ftshared.h)
GUARD_SOCKET, GUARD_CONNECTED, GUARD_KNOWN = 0x01, 0x02, 0x04
GUARD_BITS: dict[SpareMode, int] = {
    "none": 0,
    "sockets": GUARD_SOCKET,
    "connected": GUARD_SOCKET | GUARD_CONNECTED,
}
# The protocols each spare mode can judge.
SPARE_PROTOS: dict[SpareMode, tuple[int, ...]] = {
    "none": SIG_PROTOS,
    "sockets": (1, 6, 17, 58),
    "connected": (17,),
}
MAX_RATE_PPS = 10_000_000  # keeps rate * 1e9 (bucket capacity in nano-tokens) in 64 bits


class RuleError(ValueError):
    """A rule spec that cannot be installed (bad fields or a full table)."""




def validate_spec(spec: RuleSpec) -> None:
    """Raise RuleError when `spec` does not describe an installable rule."""
    if spec.spare not in GUARD_BITS:
        raise RuleError(f"spare must be one of {tuple(GUARD_BITS)}, got {spec.spare!r}")
    if spec.spare != "none" and spec.kind != "signature":
        raise RuleError(f"spare={spec.spare} needs a signature rule, not a {spec.kind} rule")
    if spec.spare_known and spec.kind != "signature":
        raise RuleError(f"spare_known needs a signature rule, not a {spec.kind} rule")
    if spec.fragments and spec.kind != "signature":
        raise RuleError(f"fragments needs a signature rule, not a {spec.kind} rule")
    if spec.rate_pps is not None and not 1 <= spec.rate_pps <= MAX_RATE_PPS:
        raise RuleError(f"rate_pps must be 1..{MAX_RATE_PPS}, got {spec.rate_pps}")
    if spec.kind in ("src", "prefix"):
        if spec.network is None:
            raise RuleError(f"a {spec.kind} rule needs a network")
        if spec.kind == "src" and spec.network.prefixlen != spec.network.max_prefixlen:
            raise RuleError(f"a src rule needs a host address, got {spec.network}")
        return
    if spec.kind != "signature":
        raise RuleError(f"unknown rule kind {spec.kind!r}")
    if spec.proto not in SIG_PROTOS:
        raise RuleError(f"signature proto must be one of {SIG_PROTOS}, got {spec.proto}")
    for name in ("src_port", "dst_port"):
        port = getattr(spec, name)
        if port is not None and not 0 <= port <= 65535:
            raise RuleError(f"{name} must be 0..65535, got {port}")
    if spec.proto not in SPARE_PROTOS[spec.spare]:
        raise RuleError(
            f"spare={spec.spare} judges proto {SPARE_PROTOS[spec.spare]}, got {spec.proto}"
        )
    if (spec.src_port is not None or spec.dst_port is not None) and spec.proto not in (6, 17):
        raise RuleError("ports need proto 6 (tcp) or 17 (udp)")
    if spec.fragments and (
        spec.src_port is not None or spec.dst_port is not None or spec.tcp_flags_mask is not None
    ):
        raise RuleError("a fragments rule takes no ports or tcp flags (later fragments have none)")
    if (spec.tcp_flags is None) != (spec.tcp_flags_mask is None):
        raise RuleError("tcp_flags and tcp_flags_mask go together")
    if spec.tcp_flags_mask is not None:
        assert spec.tcp_flags is not None
        if spec.proto != 6:
            raise RuleError("tcp_flags need proto 6")
        if not (0 <= spec.tcp_flags <= 255 and 0 <= spec.tcp_flags_mask <= 255):
            raise RuleError("tcp_flags and tcp_flags_mask are bytes (0..255)")
        if spec.tcp_flags & ~spec.tcp_flags_mask:
            raise RuleError("tcp_flags has bits outside tcp_flags_mask")



def sig_fields(spec: RuleSpec) -> tuple[int, int, int, int, int, int, bytes, int]:
    """(proto, match bits, tcp flags, mask, sport, dport, dst, guard) of a signature rule,
    ports as the host-order integers bcc stores network-order __u16 fields in."""
    match = 0
    sport = dport = 0
    if spec.src_port is not None:
        match |= SIG_MATCH_SPORT
        sport = int.from_bytes(spec.src_port.to_bytes(2, "big"), sys.byteorder)
    if spec.dst_port is not None:
        match |= SIG_MATCH_DPORT
        dport = int.from_bytes(spec.dst_port.to_bytes(2, "big"), sys.byteorder)
    flags = mask = 0
    if spec.tcp_flags_mask is not None:
        assert spec.tcp_flags is not None
        match |= SIG_MATCH_FLAGS
        flags, mask = spec.tcp_flags, spec.tcp_flags_mask
    if spec.fragments:
        match |= SIG_MATCH_FRAG
    dst = b""
    if spec.dst is not None:
        match |= SIG_MATCH_DST4 if spec.dst.version == 4 else SIG_MATCH_DST6
        dst = spec.dst.packed
    guard = GUARD_BITS[spec.spare] | (GUARD_KNOWN if spec.spare_known else 0)
    return int(spec.proto or 0), match, flags, mask, sport, dport, dst, guard


def decode_sig(leaf: Any) -> RuleSpec:
    """The RuleSpec of a signature slot (struct ft_sig_rule)."""
    match = int(leaf.match)

    def port(value: int) -> int:
        return int.from_bytes(int(value).to_bytes(2, sys.byteorder), "big")

    dst: IPAddress | None = None
    if match & SIG_MATCH_DST4:
        dst = ipaddress.IPv4Address(bytes(leaf.dst)[:4])
    elif match & SIG_MATCH_DST6:
        dst = ipaddress.IPv6Address(bytes(leaf.dst))
    has_flags = bool(match & SIG_MATCH_FLAGS)
    return RuleSpec(
        "signature",
        proto=int(leaf.proto),
        src_port=port(leaf.sport) if match & SIG_MATCH_SPORT else None,
        dst_port=port(leaf.dport) if match & SIG_MATCH_DPORT else None,
        tcp_flags=int(leaf.tcp_flags) if has_flags else None,
        tcp_flags_mask=int(leaf.tcp_flags_mask) if has_flags else None,
        dst=dst,
        rate_pps=int(leaf.rule.rate_pps) or None,
        spare=next(
            (m for m, b in GUARD_BITS.items() if b == int(leaf.guard) & ~GUARD_KNOWN), "none"
        ),
        spare_known=bool(int(leaf.guard) & GUARD_KNOWN),
        fragments=bool(match & SIG_MATCH_FRAG),
    )

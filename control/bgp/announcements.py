"""What ftcontrol announces, as typed values, and the ExaBGP API commands for them.

A FlowSpec rule (RFC 8955 / RFC 8956 for IPv6) matches traffic to one protected address
and tells upstream routers to discard it or to rate-limit it; an RTBH route (RFC 7999)
asks upstream routers to drop everything to the address. Commands are generated from
these values only; nothing here ever parses ExaBGP's text back.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Annotated, Literal

import msgspec

Byte = Annotated[int, msgspec.Meta(ge=0, le=255)]
PortNumber = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Length = Annotated[int, msgspec.Meta(ge=0, le=65535)]
FlowAction = Literal["discard", "rate_limit"]

# RFC 8955 section 7: traffic-rate-packets, extended community type 0x80 subtype 0x0c,
# a 2-byte AS (0) and the rate as an IEEE 754 single (packets per second).
TRAFFIC_RATE_PACKETS = 0x800C


class FlowSpecRule(
    msgspec.Struct, tag="flowspec", forbid_unknown_fields=True, kw_only=True, frozen=True
):
    """Match traffic to `destination` (a /32 or /128, or a fleet group's declared prefix);
    every other field narrows it."""

    destination: str  # "198.51.100.7/32", "2001:db8::7/128", "203.0.113.0/24"
    source: str | None = None  # a source prefix, for a rule against known sources
    protocol: Byte | None = None  # IP protocol / IPv6 next header
    src_port: PortNumber | None = None
    dst_port: PortNumber | None = None
    tcp_flags: Byte | None = None  # match when flags & tcp_flags_mask == tcp_flags
    tcp_flags_mask: Byte | None = None
    packet_length_min: Length | None = None
    packet_length_max: Length | None = None
    action: FlowAction = "discard"
    rate_pps: float | None = None  # for action "rate_limit": packets per second let through

    def __post_init__(self) -> None:
        _prefix(self.destination, "destination")
        if self.source is not None:
            src = _prefix(self.source, "source")
            if src.version != self.version:
                raise ValueError("source: not the destination's address family")
        if (self.tcp_flags is None) != (self.tcp_flags_mask is None):
            raise ValueError("tcp_flags and tcp_flags_mask go together")
        flags, mask = self.tcp_flags, self.tcp_flags_mask
        if flags is not None and mask is not None and (mask == 0 or flags & ~mask):
            raise ValueError("tcp_flags: bits outside tcp_flags_mask, or an empty mask")
        lo, hi = self.packet_length_min, self.packet_length_max
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("packet_length_min is above packet_length_max")
        if self.action == "rate_limit" and (self.rate_pps is None or self.rate_pps < 0):
            raise ValueError("rate_pps: a rate_limit rule needs a rate of 0 or more")
        if self.action == "discard" and self.rate_pps is not None:
            raise ValueError("rate_pps: only a rate_limit rule has a rate")

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.destination).version

    def key(self) -> str:
        """What identifies the route in BGP (its NLRI): a second rule with the same match
        replaces the first."""
        return "flow " + " ".join(self._match_terms())

    def _match_terms(self) -> list[str]:
        terms = [f"destination {self.destination};"]
        if self.source is not None:
            terms.append(f"source {self.source};")
        if self.protocol is not None:
            word = "protocol" if self.version == 4 else "next-header"
            terms.append(f"{word} ={self.protocol};")
        if self.src_port is not None:
            terms.append(f"source-port ={self.src_port};")
        if self.dst_port is not None:
            terms.append(f"destination-port ={self.dst_port};")
        if self.tcp_flags is not None and self.tcp_flags_mask is not None:
            terms.append(
                f"tcp-flags [{_tcp_flags_expression(self.tcp_flags, self.tcp_flags_mask)}];"
            )
        length = _length_expression(self.packet_length_min, self.packet_length_max)
        if length:
            terms.append(f"packet-length {length};")
        return terms

    def _then(self) -> str:
        if self.action == "discard":
            return "discard;"
        rate = struct.unpack(">I", struct.pack(">f", float(self.rate_pps or 0.0)))[0]
        return f"extended-community [0x{TRAFFIC_RATE_PACKETS:04x}0000{rate:08x}];"

    def announce_command(self) -> str:
        match = " ".join(self._match_terms())
        return f"announce flow route {{ match {{ {match} }} then {{ {self._then()} }} }}"

    def withdraw_command(self) -> str:
        return f"withdraw flow route {{ match {{ {' '.join(self._match_terms())} }} }}"


class Rtbh(msgspec.Struct, tag="rtbh", forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A remotely triggered blackhole: the host route with the blackhole community."""

    destination: str  # "/32" or "/128"
    next_hop: str
    community: tuple[int, int] = (65535, 666)

    def __post_init__(self) -> None:
        net = _host_prefix(self.destination, "destination")
        try:
            hop = ipaddress.ip_address(self.next_hop)
        except ValueError:
            raise ValueError(f"next_hop: {self.next_hop!r} is not an IP address") from None
        if hop.version != net.version:
            raise ValueError("next_hop: not the destination's address family")

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.destination).version

    def key(self) -> str:
        return f"route {self.destination}"

    def announce_command(self) -> str:
        high, low = self.community
        return (
            f"announce route {self.destination} next-hop {self.next_hop} community [{high}:{low}]"
        )

    def withdraw_command(self) -> str:
        return f"withdraw route {self.destination} next-hop {self.next_hop}"


Announcement = FlowSpecRule | Rtbh


def _prefix(value: str, key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not a prefix") from None


def _host_prefix(value: str, key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    net = _prefix(value, key)
    if net.prefixlen != net.max_prefixlen:
        raise ValueError(f"{key}: {value!r} is not a single address (/32 or /128)")
    return net


def _tcp_flags_expression(value: int, mask: int) -> str:
    """flags & mask == value as FlowSpec bitmask terms: the bits of `value` all set
    (match bit) AND none of the other bits of `mask` set (not bit)."""
    must_be_clear = mask & ~value
    terms = []
    if value:
        terms.append(f"={value}")
    if must_be_clear:
        terms.append(f"!{must_be_clear}")
    return "&".join(terms)


def _length_expression(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"={lo}" if lo == hi else f">={lo}&<={hi}"
    if lo is not None:
        return f">={lo}"
    if hi is not None:
        return f"<={hi}"
    return ""

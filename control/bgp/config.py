"""The BGP speaker's configuration: a TOML file decoded into Structs, unknown keys refused.

router_id = "192.0.2.10"
local_as = 64513
rtbh_community = "65535:666"     # RFC 7999 BLACKHOLE, the default
rtbh_next_hop = "192.0.2.1"      # the address upstream routers route to discard
rtbh_next_hop_v6 = "100::1"      # RFC 6666 discard-only prefix
max_announcements = 200
default_ttl_s = 300
escalate_uplink_share = 0.8      # automatic FlowSpec at this share of the node's uplink_mbps
rtbh_after_s = 60                # flowspec_then_rtbh: trigger still there this long -> RTBH
withdraw_hold_down_s = 120       # an incident's announcements stay this long after it ends

[listen]
address = "192.0.2.10"
port = 179

[[peers]]
address = "192.0.2.1"
peer_as = 64512
families = ["ipv4_unicast", "ipv6_unicast", "ipv4_flowspec", "ipv6_flowspec"]
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

Asn = Annotated[int, msgspec.Meta(ge=1, le=4_294_967_295)]
TcpPort = Annotated[int, msgspec.Meta(ge=1, le=65535)]
AddressFamily = Literal["ipv4_unicast", "ipv6_unicast", "ipv4_flowspec", "ipv6_flowspec"]
ALL_FAMILIES: tuple[AddressFamily, ...] = (
    "ipv4_unicast",
    "ipv6_unicast",
    "ipv4_flowspec",
    "ipv6_flowspec",
)


class BgpConfigError(ValueError):
    """The file cannot be used; the message names the file and the key."""


def _ip(value: str, key: str, version: int | None = None) -> None:
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not an IP address") from None
    if version is not None and parsed.version != version:
        raise ValueError(f"{key}: {value!r} is not an IPv{version} address")


def parse_community(value: str, key: str = "rtbh_community") -> tuple[int, int]:
    """ "65535:666" -> (65535, 666); a standard community is two 16-bit halves."""
    high, sep, low = value.partition(":")
    if not sep or not high.isdigit() or not low.isdigit():
        raise ValueError(f"{key}: {value!r} is not a community ASN:VALUE")
    a, b = int(high), int(low)
    if a > 65535 or b > 65535:
        raise ValueError(f"{key}: {value!r} has a half above 65535")
    return a, b


class ListenConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    address: str
    port: TcpPort = 179

    def __post_init__(self) -> None:
        _ip(self.address, "listen.address")


class PeerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    address: str
    peer_as: Asn
    families: tuple[AddressFamily, ...] = ALL_FAMILIES
    port: TcpPort = 179  # the peer's port we connect to
    # our address for this session; default listen.address (an IPv6 peer needs its own)
    local_address: str | None = None

    def __post_init__(self) -> None:
        _ip(self.address, "peers.address")
        if self.local_address is not None:
            _ip(self.local_address, "peers.local_address")
        if not self.families:
            raise ValueError("peers.families: at least one address family is needed")


class BgpConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    router_id: str
    local_as: Asn
    listen: ListenConfig
    peers: tuple[PeerConfig, ...]
    rtbh_community: str = "65535:666"
    rtbh_next_hop: str = "192.0.2.1"
    rtbh_next_hop_v6: str = "100::1"
    max_announcements: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 200
    default_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=30 * 86400)] = 300
    # Automatic escalation (a node whose mitigation_policy is not "local"): FlowSpec when
    # the node receives at least this share of its declared uplink_mbps during an attack.
    escalate_uplink_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    # flowspec_then_rtbh: the trigger still holds this long after FlowSpec went out -> RTBH.
    rtbh_after_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 60
    # After an incident ends, its announcements are withdrawn once this long has passed
    # (an attack that comes back at once finds the filter still there).
    withdraw_hold_down_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 120

    def __post_init__(self) -> None:
        _ip(self.router_id, "router_id", version=4)
        _ip(self.rtbh_next_hop, "rtbh_next_hop", version=4)
        _ip(self.rtbh_next_hop_v6, "rtbh_next_hop_v6", version=6)
        parse_community(self.rtbh_community)
        if not self.peers:
            raise ValueError("peers: at least one [[peers]] entry is needed")
        seen = set()
        for peer in self.peers:
            if peer.address in seen:
                raise ValueError(f"peers.address: {peer.address} is listed twice")
            seen.add(peer.address)
            local = ipaddress.ip_address(self.local_address(peer))
            if local.version != ipaddress.ip_address(peer.address).version:
                raise ValueError(
                    f"peers.local_address: peer {peer.address} needs a local address of its "
                    f"family (listen.address {self.listen.address} is not)"
                )

    def local_address(self, peer: PeerConfig) -> str:
        """Our end of the session with `peer`."""
        return peer.local_address or self.listen.address

    @property
    def community(self) -> tuple[int, int]:
        return parse_community(self.rtbh_community)


def decode_bgp_config(text: str, source: str = "<bgp config>") -> BgpConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BgpConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return msgspec.convert(raw, BgpConfig)
    except msgspec.ValidationError as exc:
        raise BgpConfigError(f"{source}: {exc}") from None


def load_bgp_config(path: Path) -> BgpConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BgpConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return decode_bgp_config(text, str(path))

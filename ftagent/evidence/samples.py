"""Decode the first bytes of sampled packets (Ethernet on) into the fields the classifier
and the mitigator use. Truncated or odd packets decode as far as they go; nothing raises.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ftagent.datapath import IPAddress, Sample

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
VLAN_TYPES = (0x8100, 0x88A8)
IPV6_EXT_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options (44 = fragment)


@dataclass(frozen=True, slots=True)
class PacketInfo:
    verdict: str
    wire_len: int
    ip_version: int = 0  # 0: not IP
    src: IPAddress | None = None
    dst: IPAddress | None = None
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int | None = None
    icmp_type: int | None = None
    fragment: bool = False  # any IPv4/IPv6 fragment
    later_fragment: bool = False  # offset > 0: no L4 header


def _l4(info: dict[str, object], proto: int, data: bytes, off: int) -> None:
    info["proto"] = proto
    if proto in (6, 17) and len(data) >= off + 4:
        info["sport"], info["dport"] = struct.unpack_from("!HH", data, off)
        if proto == 6 and len(data) >= off + 14:
            info["tcp_flags"] = data[off + 13]
    elif proto in (1, 58) and len(data) >= off + 1:
        info["icmp_type"] = data[off]


def parse(sample: Sample) -> PacketInfo:
    data = sample.data
    info: dict[str, object] = {}
    off = 12
    if len(data) < 14:
        return PacketInfo(sample.verdict, sample.wire_len)
    (etype,) = struct.unpack_from("!H", data, off)
    off += 2
    while etype in VLAN_TYPES and len(data) >= off + 4:
        (etype,) = struct.unpack_from("!H", data, off + 2)
        off += 4
    if etype == ETH_P_IP and len(data) >= off + 20:
        ihl = (data[off] & 0x0F) * 4
        frag = struct.unpack_from("!H", data, off + 6)[0]
        proto = data[off + 9]
        info.update(
            ip_version=4,
            src=ipaddress.IPv4Address(data[off + 12 : off + 16]),
            dst=ipaddress.IPv4Address(data[off + 16 : off + 20]),
            proto=proto,
            fragment=bool(frag & 0x3FFF),  # MF set or offset > 0
            later_fragment=bool(frag & 0x1FFF),
        )
        if not info["later_fragment"]:
            _l4(info, proto, data, off + ihl)
    elif etype == ETH_P_IPV6 and len(data) >= off + 40:
        nxt = data[off + 6]
        info.update(
            ip_version=6,
            src=ipaddress.IPv6Address(data[off + 8 : off + 24]),
            dst=ipaddress.IPv6Address(data[off + 24 : off + 40]),
            proto=nxt,
        )
        off += 40
        for _ in range(6):
            if nxt in IPV6_EXT_HEADERS and len(data) >= off + 2:
                nxt, hlen = data[off], (data[off + 1] + 1) * 8
                off += hlen
            elif nxt == 44 and len(data) >= off + 8:
                fo = struct.unpack_from("!H", data, off + 2)[0]
                info["fragment"] = True
                info["later_fragment"] = bool(fo & 0xFFF8)
                nxt = data[off]
                off += 8
            else:
                break
        info["proto"] = nxt
        if not info.get("later_fragment"):
            _l4(info, nxt, data, off)
    return PacketInfo(sample.verdict, sample.wire_len, **info)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SampleSummary:
    """What a batch of samples says about the traffic."""

    count: int
    sources: Counter[IPAddress]
    dst_ports: Counter[int]
    src_ports: Counter[int]
    protos: Counter[int]
    icmp_types: Counter[int]
    ip_versions: Counter[int]
    mean_len: float

    def top_dst_ports(self, n: int = 5) -> list[dict[str, float | int]]:
        total = sum(self.dst_ports.values())
        return [
            {"port": p, "share": round(c / total, 3)} for p, c in self.dst_ports.most_common(n)
        ] if total else []

    def source_share(self, n: int) -> float:
        """Share of the samples sent by the n busiest sources."""
        total = sum(self.sources.values())
        return sum(c for _, c in self.sources.most_common(n)) / total if total else 0.0


def summarize(packets: Iterable[PacketInfo]) -> SampleSummary:
    sources: Counter[IPAddress] = Counter()
    dports: Counter[int] = Counter()
    sports: Counter[int] = Counter()
    protos: Counter[int] = Counter()
    icmp: Counter[int] = Counter()
    versions: Counter[int] = Counter()
    n = 0
    length = 0
    for p in packets:
        n += 1
        length += p.wire_len
        versions[p.ip_version] += 1
        if p.src is not None:
            sources[p.src] += 1
        if p.proto is not None:
            protos[p.proto] += 1
        if p.dport is not None:
            dports[p.dport] += 1
        if p.sport is not None:
            sports[p.sport] += 1
        if p.icmp_type is not None:
            icmp[p.icmp_type] += 1
    mean_len = length / n if n else 0.0
    return SampleSummary(n, sources, dports, sports, protos, icmp, versions, mean_len)

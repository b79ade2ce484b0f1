"""Real packet bytes (built with scapy) wrapped as kernel samples."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1Q, Ether

from ftagent.datapath import Sample
from ftagent.evidence.samples import PacketInfo, parse

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def sample(pkt, ts_ns: int = 0, verdict: str = "passed") -> Sample:
    raw = bytes(pkt)
    return Sample(timestamp_ns=ts_ns, wire_len=len(raw), verdict=verdict, data=raw[:128])


def udp(src: str, sport: int, dport: int, size: int = 100, dst: str = "10.0.0.2") -> PacketInfo:
    return parse(sample(ETH / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"x" * size)))


def syn(src: str, dport: int = 80) -> PacketInfo:
    return parse(
        sample(ETH / IP(src=src, dst="10.0.0.2") / TCP(sport=40000, dport=dport, flags="S"))
    )


def icmp(src: str) -> PacketInfo:
    return parse(sample(ETH / IP(src=src, dst="10.0.0.2") / ICMP()))


def icmp6(src: str) -> PacketInfo:
    return parse(sample(ETH / IPv6(src=src, dst="fd00::2") / ICMPv6EchoRequest()))


__all__ = ["ETH", "Dot1Q", "IPv6", "icmp", "icmp6", "sample", "syn", "udp"]

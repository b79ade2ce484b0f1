"""Synthetic traffic windows for the agent's unit tests (built through compute_window)."""

from __future__ import annotations

from ftagent.datapath import (
    AMP_PORT_NAMES,
    CLASSES,
    SIZE_BUCKETS,
    TCP_FLAG_CLASSES,
    VERDICTS,
    Counters,
)
from ftagent.detect.rates import Window, compute_window


def counters(at_ns: int, **values: dict[str, int]) -> Counters:
    def full(names: tuple[str, ...], given: dict[str, int] | None) -> dict[str, int]:
        given = given or {}
        return {n: int(given.get(n, 0)) for n in names}

    return Counters(
        packets=full(CLASSES, values.get("packets")),
        bytes=full(CLASSES, values.get("bytes")),
        tcp_flags=full(TCP_FLAG_CLASSES, values.get("tcp_flags")),
        udp_src_port_packets=full(AMP_PORT_NAMES, values.get("udp_ports")),
        udp_src_port_bytes=full(AMP_PORT_NAMES, values.get("udp_port_bytes")),
        sizes=full(SIZE_BUCKETS, values.get("sizes")),
        verdicts=full(VERDICTS, values.get("verdicts")),
        verdict_bytes=full(VERDICTS, values.get("verdict_bytes")),
        read_at_ns=at_ns,
    )


def window(
    *,
    seconds: float = 0.1,
    tcp: float = 0.0,
    udp: float = 0.0,
    icmp: float = 0.0,
    other: float = 0.0,
    syn: float = 0.0,
    ack: float = 0.0,
    rst: float = 0.0,
    fragment: float = 0.0,
    ipv6_share: float = 0.0,
    size: int = 100,
    udp_sport: dict[int, float] | None = None,
    dropped: float = 0.0,
) -> Window:
    """A window with these per-second rates (packets); every packet `size` bytes."""

    def n(rate: float) -> int:
        return round(rate * seconds)

    total = tcp + udp + icmp + other
    ports = {str(p): n(r) for p, r in (udp_sport or {}).items()}
    ports["other"] = n(udp) - sum(ports.values())
    pk = {
        "total": n(total),
        "ipv4": n(total * (1 - ipv6_share)),
        "ipv6": n(total * ipv6_share),
        "tcp": n(tcp),
        "udp": n(udp),
        "icmp": n(icmp),
        "other_l4": n(other),
        "fragment": n(fragment),
    }
    cur = counters(
        int(seconds * 1e9),
        packets=pk,
        bytes={k: v * size for k, v in pk.items()},
        tcp_flags={
            "syn": n(syn),
            "ack": n(ack),
            "rst": n(rst),
            "other": n(tcp) - n(syn) - n(ack) - n(rst),
        },
        udp_ports=ports,
        udp_port_bytes={k: v * size for k, v in ports.items()},
        verdicts={"drop_signature": n(dropped), "passed": n(total) - n(dropped)},
    )
    return compute_window(counters(0), cur)

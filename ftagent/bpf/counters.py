"""The packet counters (per-CPU `stats`, struct ft_stats) summed into `Counters`."""

from __future__ import annotations

import time
from typing import Any

from ftagent.bpf.tables import Tables
from ftagent.datapath import (
    AMP_PORT_NAMES,
    CLASSES,
    SIZE_BUCKETS,
    TCP_FLAG_CLASSES,
    VERDICTS,
    Counters,
)


class LayoutMismatch(RuntimeError):
    """The compiled program's counter arrays and ftagent/datapath.py's names differ."""


def _sum_leaves(leaves: Any, field: str) -> list[int]:
    """Element-wise sum of an array field over per-CPU leaves."""
    total: list[int] | None = None
    for leaf in leaves:
        values = list(getattr(leaf, field))
        total = values if total is None else [a + b for a, b in zip(total, values, strict=True)]
    return total or []


def _named(names: tuple[str, ...], values: list[int]) -> dict[str, int]:
    if len(values) != len(names):
        raise LayoutMismatch(f"map layout has {len(values)} slots, datapath.py names {len(names)}")
    return dict(zip(names, values, strict=True))


def read_counters(tables: Tables) -> Counters:
    leaves = tables["stats"][0]
    return Counters(
        packets=_named(CLASSES, _sum_leaves(leaves, "class_packets")),
        bytes=_named(CLASSES, _sum_leaves(leaves, "class_bytes")),
        tcp_flags=_named(TCP_FLAG_CLASSES, _sum_leaves(leaves, "tcp_flags")),
        udp_src_port_packets=_named(AMP_PORT_NAMES, _sum_leaves(leaves, "udp_port_packets")),
        udp_src_port_bytes=_named(AMP_PORT_NAMES, _sum_leaves(leaves, "udp_port_bytes")),
        sizes=_named(SIZE_BUCKETS, _sum_leaves(leaves, "sizes")),
        verdicts=_named(VERDICTS, _sum_leaves(leaves, "verdict_packets")),
        verdict_bytes=_named(VERDICTS, _sum_leaves(leaves, "verdict_bytes")),
        read_at_ns=time.monotonic_ns(),
    )

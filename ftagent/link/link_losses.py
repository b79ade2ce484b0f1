"""The interface's receive losses, read from the kernel: packets the NIC or its driver
could not take before XDP ever saw them (rx dropped + rx missed + rx fifo errors).

Read through netlink (RTM_GETLINK's 64-bit stats), not /sys/class/net: sysfs shows the
devices of the namespace that mounted it, so an agent started with `nsenter --net` (the
lab, containers) would read the wrong interface or none. A netlink socket belongs to the
namespace of the thread that opened it: open the reader in the thread that polls.

XDP's own drops are not in these counters (veth and NIC drivers count XDP_DROP apart),
so what the mitigation drops never looks like a lost packet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class LinkStatsError(RuntimeError):
    """The interface's statistics cannot be read (gone, or netlink refused)."""


@dataclass(frozen=True, slots=True)
class RxLosses:
    """Cumulative receive-loss counters of one interface at one moment."""

    dropped: int  # rx_dropped: no buffer, backlog full, no protocol handler ...
    missed: int  # rx_missed_errors: the NIC's ring was full (host too slow)
    fifo: int  # rx_fifo_errors: the NIC's FIFO overran
    read_at_s: float  # time.monotonic() of the read

    @property
    def total(self) -> int:
        return self.dropped + self.missed + self.fifo


def lost_pps(prev: RxLosses, cur: RxLosses) -> float:
    """Packets lost per second between two reads. A counter that went backwards (the
    interface was re-created) counts from zero, as the XDP counters do."""
    seconds = cur.read_at_s - prev.read_at_s
    if seconds <= 0:
        return 0.0
    lost = 0
    for p, c in ((prev.dropped, cur.dropped), (prev.missed, cur.missed), (prev.fifo, cur.fifo)):
        lost += c - p if c >= p else c
    return lost / seconds


class LinkCounters:
    """Reads one interface's receive losses over a netlink socket kept open."""

    def __init__(self, interface: str, clock: Callable[[], float] = time.monotonic) -> None:
        from pyroute2 import IPRoute

        self.interface = interface
        self.clock = clock
        self._ipr: Any = IPRoute()
        try:
            found = self._ipr.link_lookup(ifname=interface)
        except Exception as exc:
            self._ipr.close()
            raise LinkStatsError(f"cannot look up interface {interface!r}: {exc}") from exc
        if not found:
            self._ipr.close()
            raise LinkStatsError(f"no interface {interface!r} in this network namespace")
        self.ifindex = int(found[0])

    def read(self) -> RxLosses:
        try:
            msg = self._ipr.get_links(self.ifindex)[0]
        except Exception as exc:
            raise LinkStatsError(
                f"cannot read the statistics of {self.interface!r}: {exc}"
            ) from exc
        stats = msg.get_attr("IFLA_STATS64")
        if stats is None:
            raise LinkStatsError(f"{self.interface!r} reports no 64-bit statistics")
        return RxLosses(
            dropped=int(stats["rx_dropped"]),
            missed=int(stats["rx_missed_errors"]),
            fifo=int(stats["rx_fifo_errors"]),
            read_at_s=self.clock(),
        )

    def close(self) -> None:
        self._ipr.close()

"""Steady pacing for lab floods: a tbf qdisc on a per-flood macvlan of the attacker veth.

trafgen's own `-b <N>pps` sends each second's packets in a ~0.2 s burst at line rate and
then nothing, which flatters any rate limit. Instead every paced flood gets its own
macvlan (mode private) on top of the attacker veth, with a tbf qdisc at the requested
byte rate (pps x frame length), and trafgen sends into it through the qdisc path
(`-q`, sendto with `-t 0`). The socket's send buffer, not the qdisc, is the bound on what
waits (the qdisc limit is far above it), so trafgen blocks instead of losing packets, and
the victim sees the rate evenly, second by second and 100 ms by 100 ms.

One macvlan per flood (not one qdisc on the veth) keeps concurrent floods of one lab
independent: each holds its own rate. Frames keep the attacker veth's MAC as source;
the macvlan leaves with `close()`, or with the namespace.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass

from lab.netns import NETNS_DIR

_counter = itertools.count(1)
_counter_lock = threading.Lock()

# Token-bucket depth: 5 ms of traffic (at least 4 frames). No 100 ms window can carry more
# than ~5 % over the rate, and a sender held off the CPU for a few ms (a loaded machine)
# catches up instead of losing the time: measured with memcached at 25 kpps under load,
# 2 ms gave 17-22 kpps, 5 ms 24.9 kpps.
BURST_S = 0.005
MIN_BURST_FRAMES = 4
# Bytes the qdisc may hold: far above a socket's default send buffer (~208 KiB of
# truesize), so the sender blocks on its buffer and the qdisc never drops.
QUEUE_LIMIT_BYTES = 16 * 1024 * 1024


DRAIN_POLL_S = 0.02


class PacingError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class TbfParams:
    """The tbf qdisc for a flood of `pps` frames of `frame_bytes` (rate, burst, limit in
    bytes; what the qdisc counts is the whole frame, Ethernet header included)."""

    rate_bytes_s: int
    burst_bytes: int
    limit_bytes: int


def tbf_params(pps: int, frame_bytes: int) -> TbfParams:
    if pps <= 0:
        raise PacingError(f"pps must be positive, got {pps}")
    if frame_bytes <= 0:
        raise PacingError(f"frame_bytes must be positive, got {frame_bytes}")
    rate = pps * frame_bytes
    burst = max(MIN_BURST_FRAMES * frame_bytes, int(rate * BURST_S))
    return TbfParams(rate_bytes_s=rate, burst_bytes=burst, limit_bytes=QUEUE_LIMIT_BYTES)


def pace_ifname() -> str:
    """A fresh name for a pacing macvlan (names are per namespace: a counter suffices)."""
    with _counter_lock:
        return f"ftpace{next(_counter)}"


@dataclass
class PacedLink:
    """A macvlan on `lower` in namespace `ns`, with tbf `params` as its root qdisc."""

    ns: str
    lower: str
    ifname: str
    params: TbfParams

    @classmethod
    def create(cls, ns: str, lower: str, params: TbfParams) -> PacedLink:
        from pyroute2 import NetNS

        link = cls(ns, lower, pace_ifname(), params)
        with NetNS(ns, flags=0) as nsr:  # the lab's namespace: never create one
            found = nsr.link_lookup(ifname=lower)
            if not found:
                raise PacingError(f"no interface {lower!r} in namespace {ns!r}")
            nsr.link("add", ifname=link.ifname, kind="macvlan", link=found[0],
                     macvlan_mode="private")  # fmt: skip
            try:
                idx = nsr.link_lookup(ifname=link.ifname)[0]
                nsr.tc("add", "tbf", index=idx, handle="1:", rate=params.rate_bytes_s,
                       burst=params.burst_bytes, limit=params.limit_bytes)  # fmt: skip
                nsr.link("set", index=idx, state="up")
            except BaseException:
                nsr.link("del", index=nsr.link_lookup(ifname=link.ifname)[0])
                raise
        return link

    def queued(self) -> int:
        """Frames waiting in the tbf qdisc now (0 when the link is gone)."""
        from pyroute2 import NetNS

        if not (NETNS_DIR / self.ns).exists():
            return 0
        with NetNS(self.ns, flags=0) as nsr:
            found = nsr.link_lookup(ifname=self.ifname)
            if not found:
                return 0
            for qdisc in nsr.get_qdiscs(index=found[0]):
                stats = qdisc.get_attr("TCA_STATS")
                if qdisc.get_attr("TCA_KIND") == "tbf" and stats is not None:
                    return int(stats["qlen"])
        return 0

    def wait_drained(self, timeout_s: float) -> bool:
        """Wait until the qdisc has sent everything queued (a sender that exits hands its
        last frames to the qdisc, which paces them out after it; closing the link before
        would drop them). True when drained within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.queued() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(DRAIN_POLL_S)
        return True

    def close(self) -> None:
        """Remove the macvlan (and its qdisc). Idempotent; a vanished namespace is fine."""
        from pyroute2 import NetNS

        if not (NETNS_DIR / self.ns).exists():
            return  # the lab (and the macvlan with it) is gone already
        # flags=0: never (re)create the namespace, as pyroute2's default O_CREAT would
        with contextlib.suppress(Exception), NetNS(self.ns, flags=0) as nsr:
            found = nsr.link_lookup(ifname=self.ifname)
            if found:
                nsr.link("del", index=found[0])

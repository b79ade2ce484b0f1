"""The rate a flood actually reaches the victim at: the victim interface's rx_packets,
read every 100 ms from inside its namespace.

Each window's rate is its packet delta over its own measured length, so a late sample
(a loaded machine) makes a longer window, not a wrong rate. The flood's span runs from
the first to the last window carrying at least a tenth of the busiest one (light
background traffic before and after is not the flood); the mean leaves out that span's
first and last windows (partly filled: the flood started or stopped inside them).
Everything arriving at the interface counts, so other traffic sent at the same time
(benign background, a second flood) is included.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from lab.netns import LabError, enter_netns

WINDOW_S = 0.1
SPAN_SHARE = 0.1  # windows under this share of the busiest one are background, not flood


@dataclass(frozen=True, slots=True)
class AchievedRate:
    packets: int  # arrived at the victim's interface during the flood's span (+1 window)
    mean_pps: float  # over the full windows (see module doc)
    max_window_pps: float  # the busiest 100 ms window
    windows_pps: tuple[float, ...]  # every window of the flood's span, in order

    @property
    def burstiness(self) -> float:
        """The busiest window over the mean: 1.0 is perfectly steady (0.0 without data)."""
        return self.max_window_pps / self.mean_pps if self.mean_pps else 0.0

    def describe(self) -> str:
        return (
            f"{self.mean_pps:,.0f} pps mean, {self.max_window_pps:,.0f} pps in the "
            f"busiest 100 ms window ({self.packets:,} packets at the victim)"
        )


def achieved_rate(samples: Sequence[tuple[float, int]]) -> AchievedRate:
    """Summarise (monotonic time, rx_packets) samples taken about every 100 ms."""
    windows = [(t1 - t0, n1 - n0) for (t0, n0), (t1, n1) in itertools.pairwise(samples) if t1 > t0]
    rates_all = [n / dt for dt, n in windows]
    if not rates_all or max(rates_all) <= 0:
        return AchievedRate(0, 0.0, 0.0, ())
    floor = max(rates_all) * SPAN_SHARE
    busy = [i for i, r in enumerate(rates_all) if r > 0 and r >= floor]
    active = windows[busy[0] : busy[-1] + 1]
    rates = tuple(n / dt for dt, n in active)
    # the windows just before and after the span may hold the flood's first or last few
    # packets (under a tenth of the busiest): they count, though not towards the mean
    packets = sum(n for _, n in windows[max(0, busy[0] - 1) : busy[-1] + 2])
    full = active[1:-1] if len(active) >= 3 else active
    mean = sum(n for _, n in full) / sum(dt for dt, _ in full)
    return AchievedRate(packets, mean, max(rates), rates)


def rx_packets(ifname: str) -> int:
    """rx_packets of `ifname` in the calling thread's network namespace."""
    with open("/proc/thread-self/net/dev") as fh:
        for line in fh:
            name, sep, rest = line.partition(":")
            if sep and name.strip() == ifname:
                return int(rest.split()[1])
    raise LabError(f"no interface {ifname!r} in this network namespace")


class RxRateMeter:
    """Samples `ifname`'s rx_packets in namespace `ns` every 100 ms on its own thread,
    from start() until stop(), which returns the AchievedRate."""

    def __init__(self, ns: str, ifname: str, window_s: float = WINDOW_S) -> None:
        self.ns, self.ifname, self.window_s = ns, ifname, window_s
        self._samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._sample, name=f"rxrate-{ifname}",
                                        daemon=True)  # fmt: skip

    def start(self) -> RxRateMeter:
        self._thread.start()
        self._ready.wait(5.0)  # the first sample is taken before the flood starts
        return self

    def _sample(self) -> None:
        try:
            with enter_netns(self.ns):
                next_at = time.monotonic()
                while True:
                    self._samples.append((time.monotonic(), rx_packets(self.ifname)))
                    self._ready.set()
                    next_at += self.window_s
                    if self._stop.wait(max(0.0, next_at - time.monotonic())):
                        self._samples.append((time.monotonic(), rx_packets(self.ifname)))
                        return
        except (OSError, LabError):
            pass  # the namespace went away under us: stop() summarises what was sampled
        finally:
            self._ready.set()

    def stop(self) -> AchievedRate:
        self._stop.set()
        self._thread.join(5.0)
        return achieved_rate(self._samples)

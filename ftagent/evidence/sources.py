"""The kernel's top-sources map, read off the 10 Hz path.

Walking the LRU map costs ~100-150 ms when a spoofed flood has filled it (16k entries),
so this runs in its own thread: it ages idle entries every `age_interval_s` and, while an
incident is active, reads the busiest sources every `top_interval_s`, turning successive
cumulative counts into rates. Drop decisions never depend on this map (a spoofed flood
churns it); the mitigator uses the sampled packets instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

from ftagent.datapath import Datapath, IPAddress
from ftcontract import agent_api

log = logging.getLogger("ftagent.sources")


@dataclass(frozen=True, slots=True)
class SourceRate:
    """One busy source from the kernel map: cumulative counts, and rates once read twice."""

    address: str
    packets: int
    bytes: int
    pps: float | None = None
    bps: float | None = None


def top_source_figures(
    kernel: list[SourceRate],
    sampled: Counter[IPAddress],
    pps: float,
    bps: float,
    limit: int,
) -> list[agent_api.SourceFigure]:
    """The incident's busiest sources with their rates.

    The kernel map's rates when it has been read twice; at its first read, each source's
    share of the read's packets and bytes times the current rate; with no kernel map, the
    sampled packets' shares times the current rate (bits from the same share).
    """
    if kernel:
        packets = sum(s.packets for s in kernel) or 1
        octets = sum(s.bytes for s in kernel) or 1
        return [
            agent_api.SourceFigure(
                ip=s.address,
                pps=s.pps if s.pps is not None else round(pps * s.packets / packets, 1),
                bps=s.bps if s.bps is not None else round(bps * s.bytes / octets, 1),
            )
            for s in kernel
        ]
    total = sum(sampled.values())
    if not total:
        return []
    return [
        agent_api.SourceFigure(
            ip=str(a), pps=round(pps * c / total, 1), bps=round(bps * c / total, 1)
        )
        for a, c in sampled.most_common(limit)
    ]


class SourceWatcher:
    def __init__(
        self,
        datapath: Datapath,
        limit: int,
        idle_s: float,
        age_interval_s: float = 10.0,
        top_interval_s: float = 2.0,
    ) -> None:
        self.dp = datapath
        self.limit = limit
        self.idle_s = idle_s
        self.age_interval_s = age_interval_s
        self.top_interval_s = top_interval_s
        self._active = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._latest: list[SourceRate] = []
        self._prev: dict[IPAddress, tuple[int, int]] = {}
        self._prev_at = 0.0
        self._thread = threading.Thread(target=self._run, name="ftagent-sources", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._active.set()
        self._thread.join(5)

    def set_active(self, active: bool) -> None:
        """Incident started (True) or ended (False): start or stop reading top sources."""
        if active:
            with self._lock:
                self._latest, self._prev, self._prev_at = [], {}, 0.0
            self._active.set()
        else:
            self._active.clear()

    def latest(self) -> list[SourceRate]:
        with self._lock:
            return list(self._latest)

    def read_once(self) -> list[SourceRate]:
        """One read of the busiest sources, with rates against the previous read."""
        now = time.monotonic()
        stats = self.dp.top_sources(self.limit)
        out: list[SourceRate] = []
        span = now - self._prev_at if self._prev_at else 0.0
        for s in stats:
            prev = self._prev.get(s.address)
            rated = span > 0 and prev is not None
            out.append(
                SourceRate(
                    address=str(s.address),
                    packets=s.packets,
                    bytes=s.bytes,
                    pps=round(max(0, s.packets - prev[0]) / span, 1) if rated and prev else None,
                    bps=round(max(0, s.bytes - prev[1]) * 8 / span, 1) if rated and prev else None,
                )
            )
        self._prev = {s.address: (s.packets, s.bytes) for s in stats}
        self._prev_at = now
        with self._lock:
            self._latest = out
        return out

    def _run(self) -> None:
        next_age = time.monotonic() + self.age_interval_s
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_age:
                    next_age = now + self.age_interval_s
                    cutoff = time.monotonic_ns() - int(self.idle_s * 1e9)
                    if cutoff > 0:
                        self.dp.age_sources(cutoff)
                if self._active.is_set():
                    self.read_once()
            except Exception as exc:  # a failed read must not kill the watcher
                log.warning("top-sources read failed: %s", exc)
            wait = self.top_interval_s if self._active.is_set() else 1.0
            self._stop.wait(wait)

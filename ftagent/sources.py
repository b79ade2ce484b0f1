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
from typing import Any

from ftagent.datapath import Datapath, IPAddress

log = logging.getLogger("ftagent.sources")


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
        self._latest: list[dict[str, Any]] = []
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

    def latest(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._latest)

    def read_once(self) -> list[dict[str, Any]]:
        """One read of the busiest sources, with rates against the previous read."""
        now = time.monotonic()
        stats = self.dp.top_sources(self.limit)
        out = []
        span = now - self._prev_at if self._prev_at else 0.0
        for s in stats:
            entry: dict[str, Any] = {
                "address": str(s.address),
                "packets": s.packets,
                "bytes": s.bytes,
            }
            prev = self._prev.get(s.address)
            if span > 0 and prev is not None:
                entry["pps"] = round(max(0, s.packets - prev[0]) / span, 1)
                entry["bps"] = round(max(0, s.bytes - prev[1]) * 8 / span, 1)
            out.append(entry)
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

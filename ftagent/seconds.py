"""`Seconds`: the loop's windows folded into one-second points.

At the end of each second it averages the second's windows into a `MetricPoint` (what
the control plane graphs), teaches the baseline the second when it was quiet (no window
above a threshold and no attack: an attack must not become normal), and saves the
baseline every `persist_interval_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ftagent.baseline import Baseline
from ftagent.rates import Window, average_windows
from ftcontract import agent_api

log = logging.getLogger("ftagent.agent")


def metric_point(
    windows: list[Window], at: float, attack: bool, baseline: Baseline
) -> agent_api.MetricPoint:
    """One second's point from its windows (time-weighted means, rounded to 0.1)."""
    m = average_windows(windows)
    secs = sum(x.duration_s for x in windows) or 1.0
    dropped_pps = sum(x.dropped_pps * x.duration_s for x in windows) / secs
    dropped_bps = sum(x.dropped_bps * x.duration_s for x in windows) / secs
    protocols = {k: round(m[f"{k}_pps"], 1) for k in ("tcp", "udp", "icmp", "fragment")}
    # fragments are also counted in their protocol; "other" is what no class took
    protocols["other"] = round(max(0.0, m["pps"] - m["tcp_pps"] - m["udp_pps"] - m["icmp_pps"]), 1)
    ready = baseline.ready
    st = baseline.stat("pps")
    return agent_api.MetricPoint(
        ts=at,
        pps=round(m["pps"], 1),
        bps=round(m["bps"], 1),
        dropped_pps=round(dropped_pps, 1),
        dropped_bps=round(dropped_bps, 1),
        protocols=protocols,
        tcp_flags={k: round(m[f"{k}_pps"], 1) for k in ("syn", "ack", "rst")},
        attack=attack,
        baseline_avg_pps=round(st.avg, 1) if ready else None,
        baseline_p95_pps=round(st.p95, 1) if ready else None,
        baseline_p99_pps=round(st.p99, 1) if ready else None,
    )


class Seconds:
    def __init__(
        self,
        baseline: Baseline,
        path: Path,
        persist_interval_s: float,
        wall: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.baseline = baseline
        self.path = path
        self.persist_interval_s = persist_interval_s
        self.wall = wall
        self.clock = clock
        self.windows: list[Window] = []
        self.hot = False  # a window of this second was above a threshold
        self.started = clock()
        self.last_persist = clock()
        self.learned = False  # the last second's point went into the baseline

    def add(self, w: Window, hot: bool, attack: bool) -> agent_api.MetricPoint | None:
        """Add one window; at the end of a second, returns its point (None before).
        A quiet second (not `hot`, no `attack`) is learned by the baseline."""
        self.windows.append(w)
        self.hot = self.hot or hot
        now = self.clock()
        if now - self.started < 1.0:
            return None
        at = self.wall()
        self.learned = not self.hot and not attack
        if self.learned:
            self.baseline.add_second(average_windows(self.windows), at)
        point = metric_point(self.windows, at, attack, self.baseline)
        self.windows, self.hot, self.started = [], False, now
        if now - self.last_persist >= self.persist_interval_s:
            self.last_persist = now
            self.save()
        return point

    def save(self) -> None:
        try:
            self.baseline.save(self.path)
        except OSError as exc:
            log.error("could not persist the baseline: %s", exc)

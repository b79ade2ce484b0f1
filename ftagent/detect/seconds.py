"""`Seconds`: the loop's windows folded into one-second points.

Seconds are cut on wall-clock second boundaries: a window belongs to the whole second
its middle falls in, and the point of second N (`ts` = N.0, the second's start) is made
by the first window of a later second. Every node cuts the same real seconds, so the
control plane sums the same second of every node of a group (fleet detection).

At the end of each second it averages the second's windows into a `MetricPoint` (what
the control plane graphs), teaches the baseline the second when it was quiet (no window
above a threshold, no attack and no fleet order in force: an attack must not become
normal), and saves the baseline every `persist_interval_s`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

from ftagent.detect.baseline import Baseline
from ftagent.detect.rates import Window, average_windows
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
    ports = {k: round(v, 1) for k, v in weighted(windows, "udp_port_pps").items()}
    ipv6 = weighted(windows, "class_pps").get("ipv6", 0.0)
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
        udp_ports={k: v for k, v in ports.items() if v > 0},
        ipv6_pps=round(ipv6, 1),
    )


def weighted(windows: list[Window], what: str) -> dict[str, float]:
    """The time-weighted mean of one of the windows' rate dicts (`Window.<what>`)."""
    secs = sum(x.duration_s for x in windows)
    if not windows or secs <= 0:
        return {}
    out: dict[str, float] = {}
    for x in windows:
        for k, v in getattr(x, what).items():
            out[k] = out.get(k, 0.0) + v * x.duration_s
    return {k: v / secs for k, v in out.items()}


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
        self.second: int | None = None  # the wall-clock second being filled
        self.hot = False  # a window of this second was above a threshold
        self.attack = False  # an incident was active in a window of this second
        self.last_persist = clock()
        self.learned = False  # the last second's point went into the baseline

    def add(self, w: Window, hot: bool, attack: bool) -> agent_api.MetricPoint | None:
        """Add one window (it ended now); returns the point of the second it closed, if
        it is the first window of a later second (None otherwise).

        `hot`: this window was above a threshold or a fleet order was in force; `attack`:
        an incident of the node was active. Such a second is not learned by the baseline."""
        # The window's middle names its second (a window may straddle a boundary).
        second = math.floor(self.wall() - w.duration_s / 2)
        point = None
        if self.second is None:
            self.second = second
        elif second > self.second and self.windows:
            point = self._close(self.second)
            self.second = second
        # A wall clock stepped back keeps filling the open second: points never go back.
        self.windows.append(w)
        self.hot = self.hot or hot
        self.attack = self.attack or attack
        return point

    def _close(self, second: int) -> agent_api.MetricPoint:
        at = float(second)
        self.learned = not self.hot and not self.attack
        if self.learned:
            self.baseline.add_second(average_windows(self.windows), at)
        point = metric_point(self.windows, at, self.attack, self.baseline)
        self.windows, self.hot, self.attack = [], False, False
        now = self.clock()
        if now - self.last_persist >= self.persist_interval_s:
            self.last_persist = now
            self.save()
        return point

    def save(self) -> None:
        try:
            self.baseline.save(self.path)
        except OSError as exc:
            log.error("could not persist the baseline: %s", exc)

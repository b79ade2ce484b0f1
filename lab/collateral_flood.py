"""One flood against the real agent in the collateral lab, measured from outside the
agent: the one runner the collateral e2e test and bench_collateral share.

    result = flood_against_agent(lab, agent, legit, passed, "udp_flood",
                                 packets=40_000, pps=25_000, measure_s=1.5)
    result.attack().dropped      # share of the attack kept from the victim's stack

While the flood runs (lab.trafgen: bounded in packets, paced, killed at the end at the
latest) the client's legitimate traffic is measured (lab.legit), and every 100 ms an
AttackMeter samples the attacker's frames entering the bridge (its bridge port's rx
counter) and those that passed XDP (lab.passcount, a tc ingress counter of the
attacker's MAC behind XDP). What the attack lost is judged from those two counters, never
from the agent's own: the agent under test does not grade itself.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lab.agent_harness import Event, RunningAgent
from lab.collateral import CollateralLab, PathCounters
from lab.legit import LegitResult, LegitTraffic
from lab.passcount import PassCounter
from lab.rxrate import AchievedRate

WINDOW_S = 0.1  # the AttackMeter's sampling interval


@dataclass
class AttackMeter:
    """Every 100 ms: (monotonic time, attacker frames into the bridge, attacker frames
    that passed XDP). Runs in the bridge namespace on its own thread."""

    lab: CollateralLab
    passed: PassCounter
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> AttackMeter:
        self._thread = threading.Thread(target=self._run, name="attack-meter", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from lab.netns import enter_netns
        from lab.rxrate import rx_packets

        with enter_netns(self.lab.bridge_ns):
            next_at = time.monotonic()
            while True:
                at = time.monotonic()
                self.samples.append((at, rx_packets(self.lab.attacker.port), self.passed.read()))
                next_at += WINDOW_S
                if self._stop.wait(max(0.0, next_at - time.monotonic())):
                    return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


@dataclass(frozen=True, slots=True)
class AttackWindows:
    start: float  # monotonic start of the first window the flood reached (0.0: none did)
    dropped: float | None
    mean_pps: float  # the attack's rate into the bridge over the span's full windows
    # the attack's frames over the windows `dropped` is computed on: into the bridge, and
    # of those, the ones that passed XDP
    arrived: int = 0
    passed: int = 0


def attack_windows(samples: Sequence[tuple[float, int, int]], since: float | None) -> AttackWindows:
    """The flood's span (windows with at least a tenth of the busiest one's arrivals) and
    the share dropped over its full windows from the first one starting at or after
    `since` (None: the whole span but its first and last, partly filled, windows).
    `start` is the first window with at least 1 % of the busiest one's arrivals (the
    flood's first packets)."""
    windows = [
        (t0, t1, a1 - a0, p1 - p0)
        for (t0, a0, p0), (t1, a1, p1) in itertools.pairwise(samples)
        if t1 > t0
    ]
    if not windows or max(w[2] for w in windows) <= 0:
        return AttackWindows(0.0, None, 0.0)
    peak = max(w[2] for w in windows)
    busy = [i for i, w in enumerate(windows) if w[2] > 0 and w[2] >= peak * 0.1]
    span = windows[busy[0] : busy[-1] + 1]
    inner = span[1:-1] or span
    mean_pps = sum(w[2] for w in inner) / sum(w[1] - w[0] for w in inner)
    first = next(w for w in windows if w[2] >= peak * 0.01)
    full = span[1:-1] if since is None else [w for w in span[:-1] if w[0] >= since]
    arrived = sum(w[2] for w in full)
    passed = sum(min(w[3], w[2]) for w in full)
    dropped = 1.0 - passed / arrived if arrived > 0 else None
    return AttackWindows(first[0], dropped, mean_pps, arrived, passed)


@dataclass(frozen=True, slots=True)
class FloodResult:
    """One flood against the agent, as the lab saw it."""

    t0_ns: int  # monotonic ns just before the flood was started
    legit: LegitResult  # the client's traffic, measured during the flood
    measured_from: float  # monotonic s at which that measurement began
    achieved: AchievedRate | None  # the victim interface's rx (legitimate traffic too)
    path: PathCounters  # the path's loss counters over the measurement (after - before)
    # the client's frames that passed XDP over the measurement (lab.passcount)
    client_passed: int
    samples: tuple[tuple[float, int, int], ...]  # the AttackMeter's, over the flood
    opened: tuple[Event, ...]  # incidents the agent opened from the flood's start on
    rules: tuple[Event, ...]  # rules it added or widened from the flood's start on

    @property
    def t0(self) -> float:
        return self.t0_ns / 1e9

    @property
    def first_rule(self) -> float | None:
        """Monotonic s when the agent's first rule was in (None: no rule)."""
        return self.rules[0].at_ns / 1e9 if self.rules else None

    def attack(self) -> AttackWindows:
        """The attack's windows and the share of it dropped from the first full window
        after the first rule (no rule: over the whole flood)."""
        return attack_windows(self.samples, self.first_rule)

    @property
    def client_lost(self) -> int:
        """The client's frames it sent and that did not reach the victim's stack."""
        return self.path.hosts["client"].tx_packets - self.client_passed


def flood_against_agent(lab: CollateralLab, agent: RunningAgent, legit: LegitTraffic,
                        passed: PassCounter, profile: str, *, packets: int, pps: int,
                        measure_s: float, ip_version: int = 4,
                        fresh_sources: Sequence[str] = (), from_first_rule_s: float | None = None,
                        while_flooding: Callable[[], None] | None = None,
                        finish_s: float = 2.0) -> FloodResult:  # fmt: skip
    """Start `profile` (`packets` at `pps`) from the attacker and measure the client's
    traffic for `measure_s` from the flood's start, or with `from_first_rule_s` from the
    agent's first rule on (waiting that long for it). `while_flooding` runs right after
    the measurement, the flood's rules still in (bench_collateral reads their counters).
    The flood is then given `finish_s` to end by itself before it is stopped. `passed`
    counts the attacker's MAC first and the client's among the others."""
    from lab.trafgen import start_flood, stop_flood

    meter = AttackMeter(lab, passed).start()
    path_before = lab.path_counters()
    client_before = passed.read(lab.client.mac)
    t0_ns = time.monotonic_ns()
    flood = start_flood(lab, profile, packets=packets, pps=pps, ip_version=ip_version)
    try:
        if from_first_rule_s is not None:
            agent.wait_for(lambda: bool(_rules(agent, t0_ns)), from_first_rule_s,
                           "the first rule")  # fmt: skip
        measured_from = time.monotonic()
        result = legit.measure(measure_s, fresh_sources=fresh_sources)
        path = lab.path_counters() - path_before
        client_passed = passed.read(lab.client.mac) - client_before
        if while_flooding is not None:
            while_flooding()
        with contextlib.suppress(Exception):
            flood.wait(finish_s)  # it ends by itself once its packets are out
    finally:
        achieved = stop_flood(flood)
        meter.stop()
    return FloodResult(
        t0_ns=t0_ns,
        legit=result,
        measured_from=measured_from,
        achieved=achieved,
        path=path,
        client_passed=client_passed,
        samples=tuple(meter.samples),
        opened=tuple(agent.sink.of("opened", t0_ns)),
        rules=_rules(agent, t0_ns),
    )


def _rules(agent: RunningAgent, since_ns: int) -> tuple[Event, ...]:
    return tuple(e for e in agent.sink.of("rule", since_ns)
                 if e.data.action in ("added", "widened"))  # fmt: skip

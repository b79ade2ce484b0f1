"""BGP engine against real daemons: time from announce() to the route in BIRD's table,
and from withdraw() to its removal (BIRD 2 as the upstream router and ExaBGP in network
namespaces of the bench's own, see lab/bird.py). Also: ExaBGP killed -> routes back in
BIRD (supervisor back-off 0.5 s + ExaBGP start + session + re-announce).

The clock stops when `birdc show route` first shows the change; birdc is polled as fast
as it answers, so each figure includes up to one birdc round trip.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from control.bgp.announcements import Announcement, FlowSpecRule, Rtbh
from control.bgp.engine import Accepted, BgpEngine
from lab.bird import FLOW4, UNICAST4, BgpLab, BirdRoute

N = 30
DECLARED = ["203.0.113.0/24"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _bgp_routes(lab: BgpLab, table: str) -> list[BirdRoute]:
    return [r for r in lab.routes(table) if r.attributes.get("Type", "").startswith("BGP")]


async def _until(check: Callable[[], bool], within: float = 30.0) -> float:
    """Seconds until `check` (blocking: birdc) is true, polled back to back."""
    t0 = time.perf_counter()
    while not await asyncio.to_thread(check):
        if time.perf_counter() - t0 > within:
            raise TimeoutError("BIRD did not show the change")
    return time.perf_counter() - t0


async def _round_trips(
    engine: BgpEngine, lab: BgpLab, table: str, make: Callable[[int], Announcement]
) -> tuple[list[float], list[float]]:
    announce_s, withdraw_s = [], []
    for i in range(N):
        announcement = make(i)
        t0 = time.perf_counter()
        result = await engine.announce(announcement, DECLARED)
        assert isinstance(result, Accepted) and result.sent, result
        await _until(lambda: len(_bgp_routes(lab, table)) == 1)
        announce_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await engine.withdraw(result.live.id)
        await _until(lambda: not _bgp_routes(lab, table))
        withdraw_s.append(time.perf_counter() - t0)
    return announce_s, withdraw_s


async def _run(lab: BgpLab, workdir: Path) -> list[tuple[str, str]]:
    engine = BgpEngine(lab.speaker_config(), workdir, argv_prefix=lab.speaker_argv_prefix)
    t0 = time.perf_counter()
    await engine.start()
    await _until(lambda: lab.session_state() == "Established")
    await _until(lambda: engine.speaker.connected)
    rows = [("ExaBGP start -> session Established (s)", f"{time.perf_counter() - t0:.2f}")]
    try:
        cases: list[tuple[str, str, Callable[[int], Announcement]]] = [
            (
                "FlowSpec v4",
                FLOW4,
                lambda i: FlowSpecRule(
                    destination=f"203.0.113.{1 + i % 200}/32", protocol=17, src_port=11211
                ),
            ),
            (
                "RTBH v4",
                UNICAST4,
                lambda i: Rtbh(destination=f"203.0.113.{1 + i % 200}/32", next_hop="192.0.2.1"),
            ),
        ]
        for name, table, make in cases:
            announce_s, withdraw_s = await _round_trips(engine, lab, table, make)
            for verb, values in (("announce()", announce_s), ("withdraw()", withdraw_s)):
                rows.append(
                    (
                        f"{name}: {verb} -> BIRD, p50 / p95 / max (ms, N={N})",
                        f"{_pct(values, 0.5) * 1e3:.0f} / {_pct(values, 0.95) * 1e3:.0f} / "
                        f"{max(values) * 1e3:.0f}",
                    )
                )
        # recovery: kill ExaBGP with one rule live, time until BIRD has it again
        rule = FlowSpecRule(destination="203.0.113.9/32", protocol=17, src_port=53)
        result = await engine.announce(rule, DECLARED)
        assert isinstance(result, Accepted)
        await _until(lambda: len(_bgp_routes(lab, FLOW4)) == 1)
        pid = engine.speaker.pid
        assert pid is not None
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        await _until(lambda: not _bgp_routes(lab, FLOW4))
        dropped = time.perf_counter() - t0
        await _until(lambda: len(_bgp_routes(lab, FLOW4)) == 1)
        rows.append(("ExaBGP SIGKILL -> routes gone from BIRD (s)", f"{dropped:.2f}"))
        rows.append(
            ("ExaBGP SIGKILL -> re-announced in BIRD (s)", f"{time.perf_counter() - t0:.2f}")
        )
    finally:
        await engine.stop()
    rows.append(("birdc round trip, median (ms)", f"{await _birdc_ms(lab):.1f}"))
    return rows


async def _birdc_ms(lab: BgpLab) -> float:
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        await asyncio.to_thread(lab.routes, FLOW4)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    if os.geteuid() != 0:
        print("skipped: needs root (network namespaces)")
        return
    with BgpLab.create() as lab, tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(_run(lab, Path(tmp)))
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

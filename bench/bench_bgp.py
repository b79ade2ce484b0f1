"""BGP engine against real daemons: time from announce() to the route in BIRD's table,
and from withdraw() to its removal (BIRD 2 as the upstream router and ExaBGP in network
namespaces of the bench's own, see lab/bird.py). Also: ExaBGP killed -> routes back in
BIRD (supervisor back-off 0.5 s + ExaBGP start + session + re-announce).

The clock stops when `birdc show route` first shows the change; birdc is polled as fast
as it answers, so each figure includes up to one birdc round trip.

Then the automatic policy end to end (lab/escalation.py): `ftagent run` on the lab's victim
veth reporting to `ftcontrol serve --bgp-config` (its own ExaBGP, peered with BIRD), node
policy `flowspec` with a small uplink_mbps; a memcached-style flood's bps crosses the
share. Per run: from the flood's start (the trafgen call, so trafgen's own start-up is
included) to the FlowSpec rule in BIRD, and from detection (the agent's incident_opened
log line, millisecond time stamps) to the rule in BIRD; RUNS floods, each after the last
one's rule was withdrawn.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from control.bgp.announcements import Announcement, FlowSpecRule, Rtbh
from control.bgp.engine import Accepted, BgpEngine
from lab.bird import FLOW4, UNICAST4, BgpLab, BirdRoute

N = 30
DECLARED = ["203.0.113.0/24"]
RUNS = 5  # automatic escalations (each ~15 s: flood, detection, resolve, hold-down)
FLOOD_PPS = 10_000  # 1,400-byte frames: ~115 Mbit/s against an uplink of 50 Mbit/s
UPLINK_MBPS = 50.0


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


def _opened_at(agent_log: Path, after: float) -> float:
    """Unix time of the agent's first incident_opened log line at or after `after`."""
    for line in agent_log.read_text(errors="replace").splitlines():
        if '"incident_opened"' not in line:
            continue
        entry: dict[str, Any] = json.loads(line)
        at = datetime.fromisoformat(entry["ts"]).timestamp()
        if entry.get("event") == "incident_opened" and at >= after:
            return at
    raise TimeoutError("the agent logged no incident_opened for this flood")


def _automatic_rows() -> list[tuple[str, str]]:
    from lab.escalation import EscalationStack
    from lab.trafgen import start_flood, stop_flood

    flood_to_bird, detect_to_bird, flood_to_detect = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        stack = EscalationStack(
            Path(tmp),
            node_name="edge-bench",
            bgp_overrides={"escalate_uplink_share": 0.8, "withdraw_hold_down_s": 1.0},
        )
        try:
            stack.start()
            lab = stack._lab()
            benign = start_flood(lab, "benign", packets=200 * 600, pps=200)
            try:
                stack.wait_until(stack.session_established, 30.0, "BIRD's session")
                stack.set_policy("flowspec", UPLINK_MBPS)
                stack.wait_for_baseline()
                for _ in range(RUNS):
                    stack.wait_until(
                        lambda: (
                            not stack.flowspec_routes() and not stack.incidents(status="active")
                        ),
                        60.0,
                        "no rule in BIRD and no active incident",
                    )
                    t0 = time.time()
                    flood = start_flood(
                        lab, "memcached_amplification", packets=FLOOD_PPS * 6, pps=FLOOD_PPS
                    )
                    try:
                        stack.wait_until(stack.flowspec_routes, 20.0, "the FlowSpec rule")
                        in_bird = time.time()
                    finally:
                        stop_flood(flood)
                    detected = _opened_at(stack.workdir / "ftagent.log", t0)
                    flood_to_bird.append(in_bird - t0)
                    detect_to_bird.append(in_bird - detected)
                    flood_to_detect.append(detected - t0)
            finally:
                stop_flood(benign)
        finally:
            stack.close()

    def row(name: str, values: list[float]) -> tuple[str, str]:
        return (
            f"{name}, p50 / p95 / max (ms, N={len(values)})",
            f"{_pct(values, 0.5) * 1e3:.0f} / {_pct(values, 0.95) * 1e3:.0f} / "
            f"{max(values) * 1e3:.0f}",
        )

    return [
        row("automatic: lab flood start -> FlowSpec in BIRD", flood_to_bird),
        row("automatic: detection -> FlowSpec in BIRD", detect_to_bird),
        row("automatic: lab flood start -> detection", flood_to_detect),
    ]


def main() -> None:
    if os.geteuid() != 0:
        print("skipped: needs root (network namespaces)")
        return
    with BgpLab.create() as lab, tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(_run(lab, Path(tmp)))
    rows.extend(_automatic_rows())
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

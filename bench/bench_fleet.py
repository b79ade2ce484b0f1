"""Fleet detection benchmark (issue 18). Prints a table; asserts nothing.

1. Spread flood -> fleet incident, in the fleet lab (lab.fleet_stack: four victim
   namespaces, each with its real `ftagent run`, one real `ftcontrol serve` reached over
   the bridge): a DNS-amplification flood sprayed over the four nodes, each node's share
   below its agent's own floors (lab.fleet_measure.below_node_floors), RUNS runs. Timed
   from trafgen's launch: (a) to the fleet incident in GET /api/v1/incidents?scope=fleet
   (polled every 20 ms from the control plane's namespace), (b) to the fleet rule in force
   on the LAST node (each agent's /health, read inside its namespace: the order's
   `in_force_since`, the agent's own clock, which is this machine's). Goal: p95 < 2 s.
   Per node, over the runs: the share of its attack dropped once its rule was in force
   (tc counters: attacker frames that reached its interface vs passed its XDP) and the
   client's success during the flood against the no-flood run (the worst class).
   Without the fleet engine the same flood runs once and shows what no agent alone drops.
2. The cost of one metric point on the wire (msgspec JSON): the fields before the fleet
   release, with the new `udp_ports` and `ipv6_pps`, and with one fleet order's rule
   report (`fleet_rules`).
3. Metrics posts per second from 1,000 simulated nodes (bench.bench_loop's load
   generator; points carry the new fields, one declared prefix holds every node) with
   fleet detection on and off (`ftcontrol serve --no-fleet`), alternated twice in the
   same run. Goal: on within 10 % of off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import msgspec

from bench.bench_loop import (
    CONNECTIONS,
    MEASURE_S,
    SIM_NODES,
    WARMUP_S,
    Counter,
    _percentile,
    _seed_nodes,
    post_points,
)
from ftcontract.agent_api import FleetRuleReport, MetricPoint, RuleFigure
from lab.fleet import VICTIM_PREFIX
from lab.fleet_measure import (
    AttackMeter,
    FleetLegit,
    SpreadPlan,
    below_node_floors,
    spray,
    success_ratio,
)
from lab.fleet_stack import FleetStack
from lab.legit import LegitResult
from lab.trafgen import stop_flood

RUNS = 5
PROFILE = "dns_amplification"
FLOOD_S = 8.0
POLL_S = 0.02
DETECT_TIMEOUT_S = 20.0
MEASURE_LEGIT_S = 2.0
FLEET_HEALTH_KEY = "fleet_orders"  # as in tests/e2e/test_fleet_lab.py (the agent's /health)
SIM_PREFIX = "198.18.0.0/22"  # bench_loop's simulated nodes live in 198.18.0-3.x
LOAD_ROUNDS = 2  # off, on, off, on


# ---- 1. spread flood -> fleet incident -> rule on the last node ---------------------------


@dataclass
class NodeFigures:
    dropped: list[float] = field(default_factory=list)  # per run, share of its attack
    served: list[float] = field(default_factory=list)  # per run, worst class vs no flood


@dataclass
class LatencyResult:
    engine: bool
    to_incident: list[float] = field(default_factory=list)
    to_last_rule: list[float] = field(default_factory=list)
    # from the moment the bench saw the incident in the API (the decision, within a poll)
    seen_to_last_rule: list[float] = field(default_factory=list)
    missed: int = 0
    nodes: dict[str, NodeFigures] = field(default_factory=dict)
    note: str = ""


def set_group_thresholds(stack: FleetStack) -> httpx.Response:
    """The lab's group judged against each node's own agent floors (as the test does:
    four nodes are not a provider's 250), the default confirmation, cool-down 3 s."""
    floors = stack.floors(0)
    thresholds = {
        "cooldown_s": 3,
        "floors": {"pps": floors.pps, "udp_pps": floors.udp_pps, "amp_pps": floors.amp_port_pps},
    }  # fmt: skip
    return stack.request("PUT", "/api/v1/fleet/groups",
                         json={"group": VICTIM_PREFIX, "thresholds": thresholds})  # fmt: skip


def _unix_time(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _fleet_uuids(stack: FleetStack) -> set[str]:
    r = stack.request("GET", "/api/v1/incidents", params={"scope": "fleet", "limit": 100})
    r.raise_for_status()
    return {i["uuid"] for i in r.json()["incidents"] if i.get("scope") == "fleet"}


def _in_force_since(stack: FleetStack, i: int, uuid: str) -> float | None:
    for order in stack.health(i).get(FLEET_HEALTH_KEY, []):
        if order.get("incident_uuid") == uuid and order.get("rules"):
            since = order.get("in_force_since")
            return _unix_time(since) if since else time.time()
    return None


def fleet_latencies() -> LatencyResult:
    workdir = Path(tempfile.mkdtemp(prefix="ft-bench-fleet-"))
    try:
        with FleetStack(workdir, victims=4) as stack:
            stack.start()
            lab = stack.lab_or_fail()
            with FleetLegit.start(lab) as legit:
                stack.wait_agents_ready()
                with AttackMeter.attach(lab) as meter:
                    quiet = legit.measure(MEASURE_LEGIT_S)
                    groups = stack.request("GET", "/api/v1/fleet/groups")
                    result = LatencyResult(engine=groups.status_code == 200)
                    result.nodes = {n.name: NodeFigures() for n in stack.nodes}
                    if result.engine:
                        put = set_group_thresholds(stack)
                        if put.status_code != 200:
                            result.note = f"PUT /api/v1/fleet/groups -> {put.status_code}"
                    plan = below_node_floors(PROFILE, stack.floors(0), nodes=4, seconds=FLOOD_S)
                    for _ in range(RUNS if result.engine else 1):
                        _one_run(stack, legit, meter, quiet, plan, result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _one_run(stack: FleetStack, legit: FleetLegit, meter: AttackMeter, quiet: list[LegitResult],
             plan: SpreadPlan, result: LatencyResult) -> None:  # fmt: skip
    nodes = range(len(stack.nodes))
    stack.wait_until(
        lambda: all(stack.health(i)["status"] == "ok" and not stack.health(i).get(
            FLEET_HEALTH_KEY) for i in nodes) and (not result.engine or not any(
                i["status"] == "active" for i in stack.incidents(scope="fleet"))),
        90.0, "quiet before the next flood",
    )  # fmt: skip
    seen = _fleet_uuids(stack) if result.engine else set()
    t0 = time.time()
    flood = spray(stack.lab_or_fail(), plan)
    try:
        since = {i: t0 for i in nodes}  # without the engine: the whole flood
        if result.engine:
            uuid = ""
            while time.time() - t0 < DETECT_TIMEOUT_S and not uuid:
                new = _fleet_uuids(stack) - seen
                if new:
                    uuid = sorted(new)[0]
                    seen_at = time.time()
                    result.to_incident.append(seen_at - t0)
                time.sleep(POLL_S)
            in_force: dict[int, float] = {}
            while uuid and len(in_force) < len(nodes) and time.time() - t0 < DETECT_TIMEOUT_S:
                for i in nodes:
                    if i not in in_force and (at := _in_force_since(stack, i, uuid)):
                        in_force[i] = at
                time.sleep(POLL_S)
            if not uuid or len(in_force) < len(nodes):
                result.missed += 1
            else:
                result.to_last_rule.append(max(in_force.values()) - t0)
                result.seen_to_last_rule.append(max(in_force.values()) - seen_at)
                since = {i: at + 0.1 for i, at in in_force.items()}
        during = legit.measure(MEASURE_LEGIT_S)
        flood.wait(plan.seconds + 20)
    finally:
        stop_flood(flood)
    for i, node in enumerate(stack.nodes):
        figures = result.nodes[node.name]
        share = meter.dropped_share(i, since[i])
        figures.dropped.append(share if share is not None else float("nan"))
        figures.served.append(min(success_ratio(during[i], quiet[i]).values()))


# ---- 2. what a point costs --------------------------------------------------------------


def point_sizes() -> list[tuple[str, int]]:
    """(what, bytes) of one typical point, msgspec JSON as the agent posts it."""
    old = MetricPoint(
        ts=1765150000.0, pps=912.4, bps=7_312_640.0, dropped_pps=0.0,
        protocols={"tcp": 610.2, "udp": 280.1, "icmp": 12.0, "other": 10.1},
        tcp_flags={"syn": 20.1, "synack": 0.4, "ack": 560.3, "rst": 1.2, "fin": 10.4,
                   "other": 18.2},
        baseline_avg_pps=850.3, baseline_p95_pps=990.1, baseline_p99_pps=1100.4,
    )  # fmt: skip
    new = msgspec.structs.replace(old, udp_ports={"53": 40.2, "123": 1.0, "other": 238.9},
                                  ipv6_pps=120.5)  # fmt: skip
    rule = RuleFigure(kind="signature", match="signature proto=17 sport=53", ttl_sec=60,
                      dropped_packets=1_234_567, spared_packets=1_234, proto=17,
                      src_port=53)  # fmt: skip
    report = FleetRuleReport(incident_uuid="5f0c6a2e-4a1d-4d7e-9a43-2b7f0c1d9e88",
                             rules=[rule], in_force_since=1765149990.0)  # fmt: skip
    fleet = msgspec.structs.replace(new, fleet_rules=[report])
    enc = msgspec.json.encode
    return [
        ("point, fields before the fleet release", len(enc(old))),
        ("point + udp_ports, ipv6_pps (every point)", len(enc(new))),
        ("point + one fleet order's rule report (under a fleet order)", len(enc(fleet))),
    ]


# ---- 3. metrics ingestion, fleet detection on vs off -------------------------------------


async def _connection(port: int, nodes: list[tuple[str, str]], stop: asyncio.Event,
                      counter: Counter) -> None:  # fmt: skip
    """bench_loop's connection with the fleet release's fields, and the current second
    (what the fleet engine sums); tiny rates, so no group ever crosses a floor."""

    def body_of(i: int) -> bytes:
        return msgspec.json.encode({"points": [{
            "ts": float(int(time.time()) - 1), "pps": 1.0 + (i + 1) % 3 * 0.1, "bps": 8000.0,
            "protocols": {"tcp": 0.7, "udp": 0.3}, "udp_ports": {"53": 0.1, "other": 0.2},
            "ipv6_pps": 0.1}]})  # fmt: skip

    await post_points(port, nodes, stop, counter, body_of)


@dataclass(frozen=True, slots=True)
class Ingestion:
    posts_per_s: float
    failed: int
    # the server process's CPU time (user + system, all threads) per post answered 200:
    # steadier than posts/s on a machine shared with other work
    cpu_us_per_post: float


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (the load generator is not in it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(port: int, creds: list[tuple[str, str]], server_pid: int) -> Ingestion:
    counter = Counter()
    stop = asyncio.Event()
    share = [creds[i::CONNECTIONS] for i in range(CONNECTIONS)]
    tasks = [asyncio.create_task(_connection(port, s, stop, counter)) for s in share]
    await asyncio.sleep(WARMUP_S)
    counter.counting = True
    t0, cpu0 = time.perf_counter(), _cpu_seconds(server_pid)
    await asyncio.sleep(MEASURE_S)
    counter.counting = False
    elapsed, cpu = time.perf_counter() - t0, _cpu_seconds(server_pid) - cpu0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_post = cpu / counter.ok * 1e6 if counter.ok else float("nan")
    return Ingestion(counter.ok / elapsed, counter.failed, per_post)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingestion(fleet: bool) -> Ingestion | str:
    """Posts/s answered 200, failures and server CPU per post from SIM_NODES simulated
    nodes, one server with fleet detection on or off (a fresh store each time); a string
    when the server refused."""
    workdir = Path(tempfile.mkdtemp(prefix="ft-bench-fleet-load-"))
    db = workdir / "ftcontrol.db"
    try:
        creds = _seed_nodes(db)
        subprocess.run([sys.executable, "-m", "control.cli", "workspace", "prefixes", "bench",
                        "add", SIM_PREFIX, "--db", str(db)], check=True,
                       capture_output=True)  # fmt: skip
        port = _free_port()
        argv = [sys.executable, "-m", "control.cli", "serve", "--port", str(port), "--db",
                str(db), *([] if fleet else ["--no-fleet"])]  # fmt: skip
        env = {**os.environ, "FTCONTROL_DATA_DIR": str(workdir / "data")}
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=env)  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if server.poll() is not None:
                    err = server.stderr.read().decode() if server.stderr else ""
                    return f"server exited: {err.strip().splitlines()[-1] if err else '?'}"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                        break
                time.sleep(0.1)
            return asyncio.run(_load(port, creds, server.pid))
        finally:
            server.terminate()
            server.wait(20)
            if server.stderr is not None:
                server.stderr.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _nodes_in_one_group() -> int:
    """How many of the simulated nodes lie in SIM_PREFIX (all of them: checked)."""
    import ipaddress

    net = ipaddress.ip_network(SIM_PREFIX)
    return sum(ipaddress.ip_address(f"198.18.{i // 250}.{i % 250 + 1}") in net
               for i in range(SIM_NODES))  # fmt: skip


# ---- the table ---------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> str:
    return f"{_percentile(values, q) * 1000:.0f} ms" if values else "n/a"


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    if os.geteuid() == 0 and shutil.which("trafgen"):
        lat = fleet_latencies()
        if lat.engine:
            n = len(lat.to_incident)
            rows += [
                (f"spread flood -> fleet incident in the API, p50 ({n} runs)",
                 _ms(lat.to_incident, 0.5), ""),
                (f"spread flood -> fleet incident in the API, p95 ({n} runs)",
                 _ms(lat.to_incident, 0.95), "< 2 s"),
                (f"spread flood -> rule in force on the last node, p50 "
                 f"({len(lat.to_last_rule)} runs)", _ms(lat.to_last_rule, 0.5), ""),
                (f"spread flood -> rule in force on the last node, p95 "
                 f"({len(lat.to_last_rule)} runs)", _ms(lat.to_last_rule, 0.95), "< 2 s"),
                (f"fleet incident seen in the API -> rule in force on the last node, p95 "
                 f"(API polled every {POLL_S * 1000:.0f} ms)",
                 _ms(lat.seen_to_last_rule, 0.95), "<= 1 s"),
                ("  runs without incident + rule on every node within 20 s", str(lat.missed),
                 "0"),
            ]  # fmt: skip
        else:
            rows.append(("spread flood -> fleet incident",
                         "n/a: no fleet engine (GET /api/v1/fleet/groups 404)", ""))  # fmt: skip
        if lat.note:
            rows.append(("  note", lat.note, ""))
        what = "once its fleet rule was in force" if lat.engine else "no fleet engine: 1 run"
        for name, fig in lat.nodes.items():
            drop = statistics.fmean(fig.dropped) if fig.dropped else float("nan")
            served = min(fig.served) if fig.served else float("nan")
            rows += [
                (f"{name}: attack dropped ({what})", f"{drop * 100:.2f} %",
                 ">= 99 %" if lat.engine else ""),
                (f"{name}: client success vs no flood (worst class, worst run)",
                 f"{served * 100:.1f} %", ">= 99 %"),
            ]  # fmt: skip
    else:
        rows.append(("spread flood -> fleet incident", "skipped: needs root and trafgen", ""))
    for name, size in point_sizes():
        rows.append((name, f"{size} B", ""))
    rates: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    failures: dict[bool, int] = {True: 0, False: 0}
    refused = ""
    for _ in range(LOAD_ROUNDS):
        for on in (False, True):
            got = ingestion(on)
            if isinstance(got, str):
                refused = refused or f"fleet {'on' if on else 'off'}: {got}"
                continue
            rates[on].append(got.posts_per_s)
            cpu[on].append(got.cpu_us_per_post)
            failures[on] += got.failed
    in_group = _nodes_in_one_group()
    for on in (False, True):
        label = f"metrics posts/s, {SIM_NODES} nodes ({in_group} in {SIM_PREFIX}), fleet " + (
            "on" if on else "off"
        )
        value = f"{statistics.fmean(rates[on]):,.0f}/s" if rates[on] else "n/a"
        rows.append((label, value, ">= 2,000/s"))
        rows.append(("  posts refused or failed", str(failures[on]), "0"))
    if rates[True] and rates[False]:
        ratio = statistics.fmean(rates[True]) / statistics.fmean(rates[False])
        rows.append(("  fleet on / off", f"{ratio * 100:.1f} %", ">= 90 %"))
    for on in (False, True):
        value = f"{statistics.fmean(cpu[on]):,.0f} us" if cpu[on] else "n/a"
        rows.append((f"ftcontrol CPU per post answered, fleet {'on' if on else 'off'}", value, ""))
    if cpu[True] and cpu[False]:
        extra = statistics.fmean(cpu[True]) / statistics.fmean(cpu[False]) - 1
        rows.append(("  fleet detection's CPU per post", f"{extra * 100:+.1f} %", "<= +10 %"))
    if refused:
        rows.append(("  not measured", refused, ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>16}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>16}  {goal}")


if __name__ == "__main__":
    main()

"""The agent's local views (/health, /metrics) under the real loop: XDP on the lab's victim
veth, the loop in-process, the local HTTP server on loopback, a bounded flood in the
attacker namespace.

Both views are formatted from the one snapshot the loop publishes each window: every
response is well-formed and consistent within itself while the loop changes state under
concurrent scrapes, and the server keeps answering (the last snapshot, with an uptime
that still advances) while the loop is stuck on its lock. The control-plane reporter's
state reaches /health through the loop too (the HTTP thread never calls the reporter).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ftagent.commands.status import render
from ftagent.config import decode
from ftagent.local.http_local import LocalHttp
from ftagent.local.views import Health
from ftagent.report.sink import ControlSink
from lab.agent_harness import RunningAgent, lab_config
from tests.capability import require, require_root
from tests.unit.report.loopback import LoopbackControlPlane

pytestmark = [pytest.mark.lab, pytest.mark.kernel, pytest.mark.paced]

SCRAPERS = 3


@dataclass
class Served:
    ra: RunningAgent
    http: LocalHttp

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    from lab.netns import Lab

    with Lab.create() as lab:
        ra = RunningAgent(lab, lab_config(lab.victim_if, tmp_path)).start()
        assert ra.agent is not None
        http = LocalHttp(ra.agent.snapshot, "127.0.0.1", 0)  # loopback of the test's namespace
        http.start()
        try:
            ra.wait_baseline()
            yield Served(ra, http)
        finally:
            http.close()
            ra.stop()
    assert ra.error is None, f"agent loop failed: {ra.error!r}"


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """/metrics as {sample name: [(labels, value)]}."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def one(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    [(_, value)] = metrics[name]
    return value


@dataclass
class Scraped:
    healths: list[Health] = field(default_factory=list)
    metrics: int = 0
    problems: list[str] = field(default_factory=list)


def check_health(h: Health) -> str | None:
    """What is inconsistent within one /health response (None: nothing)."""
    if h.rules_active != len(h.rules):
        return f"rules_active {h.rules_active} but {len(h.rules)} rules"
    if (h.status == "attack") != h.attack_active or h.attack_active != (h.incident is not None):
        return f"status {h.status}, attack_active {h.attack_active}, incident {h.incident}"
    if h.incident is not None and not set(h.incident.rules) <= set(h.rules):
        return f"the incident's rules {h.incident.rules} are not among {h.rules}"
    return None


def check_metrics(m: dict[str, list[tuple[dict[str, str], float]]]) -> str | None:
    """What is inconsistent within one /metrics response (None: nothing)."""
    attack = one(m, "ftagent_attack_active")
    if attack not in (0.0, 1.0) or one(m, "ftagent_baseline_ready") != 1.0:
        return f"attack_active {attack}, baseline_ready {one(m, 'ftagent_baseline_ready')}"
    listed = {labels["rule"] for labels, _ in m.get("ftagent_rule_dropped_packets_total", [])}
    if one(m, "ftagent_rules_active") > len(listed):
        return f"{one(m, 'ftagent_rules_active')} rules active but {len(listed)} listed"
    if one(m, "ftagent_xdp_attached") != 1.0 or not m.get("ftagent_packets_total"):
        return "the program is not attached or no packet counters"
    return None


def scrape(base: str, stop: threading.Event, out: Scraped) -> None:
    last_uptime = 0.0
    with httpx.Client(base_url=base, timeout=5.0) as client:
        while not stop.is_set():
            try:
                h = msgspec.json.decode(
                    client.get("/health").raise_for_status().content, type=Health
                )
                text = client.get("/metrics").raise_for_status().text
                problem = check_health(h) or check_metrics(samples(text))
            except Exception as exc:  # a 500, a malformed body: the test fails with it
                problem = repr(exc)
                h = None
            if h is not None and h.uptime_s < last_uptime:
                problem = problem or f"uptime went back: {last_uptime} -> {h.uptime_s}"
            if problem is not None:
                out.problems.append(problem)
                return
            assert h is not None
            last_uptime = h.uptime_s
            out.healths.append(h)
            out.metrics += 1


def test_concurrent_scrapes_see_whole_snapshots_while_the_loop_runs(served: Served) -> None:
    from lab.trafgen import start_flood, stop_flood

    ra = served.ra
    stop = threading.Event()
    results = [Scraped() for _ in range(SCRAPERS)]
    threads = [
        threading.Thread(target=scrape, args=(served.base, stop, r), name=f"scraper-{i}")
        for i, r in enumerate(results)
    ]
    for t in threads:
        t.start()
    flood = None
    try:
        ra.wait_for(lambda: all(r.healths or r.problems for r in results), 10, "first scrapes")
        t0 = time.monotonic_ns()
        flood = start_flood(ra.lab, "udp_flood", packets=60_000, pps=30_000)  # 2 s, bounded
        ra.wait_for(lambda: bool(ra.sink.of("opened", t0)), 15, "the incident")
        time.sleep(0.5)  # scraped under attack
        stop_flood(flood)  # the attack ends here: nothing reopens an incident after it
        flood = None
        ra.wait_for(lambda: bool(ra.sink.of("resolved", t0)), 20, "its resolution")
        ra.wait_for(ra.quiet, 10, "rules removed after the hold-down")
        time.sleep(0.5)  # a few quiet windows scraped too
    finally:
        if flood is not None:
            stop_flood(flood)
        stop.set()
        for t in threads:
            t.join(10)
    problems = [p for r in results for p in r.problems]
    assert problems == [], problems
    healths = [h for r in results for h in r.healths]
    # The scrapes saw the loop change state: quiet, the attack with its rules, quiet again.
    assert all(r.healths[0].status == "ok" and r.healths[-1].status == "ok" for r in results)
    attack = [h for h in healths if h.incident is not None]
    assert attack and any(h.rules_active >= 1 for h in attack)
    opened = {e.data.uuid for e in ra.sink.of("opened", t0)}
    assert {h.incident.uuid for h in attack if h.incident is not None} <= opened
    assert all(r.metrics > 10 for r in results), [r.metrics for r in results]


def test_the_views_answer_from_the_last_snapshot_while_the_loop_holds_its_lock(
    served: Served,
) -> None:
    ra = served.ra
    agent = ra.agent
    assert agent is not None
    with httpx.Client(base_url=served.base, timeout=3.0) as client, agent.lock:
        first = msgspec.json.decode(client.get("/health").raise_for_status().content, type=Health)
        windows = len(ra.windows)
        time.sleep(0.5)  # five windows' time: the loop is stuck on the lock meanwhile
        second = msgspec.json.decode(client.get("/health").raise_for_status().content, type=Health)
        metrics = samples(client.get("/metrics").raise_for_status().text)
        assert len(ra.windows) == windows  # the loop did not step
    # The same snapshot, only the uptime moved on (it advances between windows).
    assert second.uptime_s >= first.uptime_s + 0.4
    assert msgspec.structs.replace(second, uptime_s=0.0) == msgspec.structs.replace(
        first, uptime_s=0.0
    )
    assert one(metrics, "ftagent_uptime_seconds") >= second.uptime_s - 0.05  # /health rounds
    assert one(metrics, "ftagent_baseline_ready") == 1.0 and metrics["ftagent_packets_total"]
    ra.wait_for(lambda: len(ra.windows) > windows + 2, 5.0, "the loop stepping again")


def health(served: Served) -> Health:
    body = httpx.get(served.base + "/health", timeout=5.0).raise_for_status().content
    return msgspec.json.decode(body, type=Health)


def test_health_shows_the_control_plane_reporter_through_an_outage(
    served: Served, tmp_path: Path
) -> None:
    agent = served.ra.agent
    assert agent is not None
    assert health(served).control_plane is None  # stand-alone: no reporter
    plane = LoopbackControlPlane()
    plane.start()
    cfg = decode(
        f"""
[agent]
interface = "{served.ra.lab.victim_if}"
state_dir = "{tmp_path / "reporter"}"
[control]
server = "{plane.url}"
api_key = "{"ab" * 32}"
node_uuid = "0b7c6a52-3d1e-4f7e-9a61-2c3d4e5f6a7b"
heartbeat_interval_s = 0.2
"""
    )
    sink = ControlSink(cfg)
    sink.start(agent.status())
    try:
        agent.reporting = sink.reporting_state  # as `ftagent run` passes it
        served.ra.wait_for(
            lambda: (c := health(served).control_plane) is not None and c.breaker == "closed",
            10.0,
            "the reporter in /health",
        )
        assert "reachable, 0 report(s) spooled" in render(health(served))
        plane.stop()
        served.ra.wait_for(
            lambda: (c := health(served).control_plane) is not None and c.breaker != "closed",
            15.0,
            "the outage in /health",
        )
        shown = health(served).control_plane
        assert shown is not None and shown.server == plane.url and shown.last_error
        assert f"{plane.url} UNREACHABLE (retrying; last error: " in render(health(served))
    finally:
        agent.reporting = None
        sink.close()
        plane.stop()

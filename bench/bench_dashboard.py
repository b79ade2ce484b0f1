"""Dashboard benchmark: first-render requests with a large store, server push latency, and
the CPU of ftcontrol with 50 open node pages.

Seeds a fresh SQLite file with bulk SQL (1,000 nodes; 100,000 incidents, one in 500
active), starts the real `ftcontrol serve` on a free loopback port and signs in as a
dashboard user. "First render" is the requests a page's script makes before it shows its
data (the HTML shell, /api/dash/me, then the page's data calls, made one after another
here where the browser makes some in parallel: an upper bound), not the browser's own
drawing. Push latency is from just before an agent's metrics POST to the point's arrival
on an open SSE stream (the page then draws it on its next one-second tick). Backfill is
from opening a page's live stream to its `backfill` event (the charts' last five minutes:
every node first posts BACKFILL_S one-second points through the Agent API, which stores
them and keeps the workspace's running totals). Prints a table; asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from bench.bench_control import _free_port
from control.core.db import open_db
from control.core.security import hash_secret
from control.dashboard import users
from control.workspace.service import create_workspace

NODES = 1_000
INCIDENTS = 100_000
RENDERS = 100
PUSHES = 200
VIEWERS = 50
BACKFILL_S = 300  # stored one-second points per node (the charts' window)
BACKFILL_OPENS = 20
CPU_WINDOW_S = 20.0
EMAIL, PASSWORD = "bench@dash.example", "bench password 123"


async def _workspace(db_path: str) -> None:
    db = await open_db(db_path)
    try:
        await create_workspace(db, "dash", "enterprise")
        await users.create_user(db, EMAIL, "dash", "viewer", PASSWORD)
    finally:
        await db.close()


def _seed(db_path: str) -> None:
    rng = random.Random(12)
    now = time.time()
    con = sqlite3.connect(db_path)
    with con:
        (ws,) = con.execute("SELECT id FROM workspaces WHERE name = 'dash'").fetchone()
        con.executemany(
            """INSERT INTO nodes (uuid, workspace_id, name, ip, interface, priority,
               api_key_hash, last_pps, last_seen, baseline_avg_pps, baseline_p95_pps,
               baseline_protocols, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            [
                (str(uuid.uuid4()), ws, f"node-{i:04d}", f"10.0.{i // 256}.{i % 256}", "eth0",
                 "normal", hash_secret(node_key(i)), rng.uniform(100, 10_000), now - 3,
                 3000.0, 8000.0, json.dumps({"tcp": 70.0, "udp": 30.0}), now - NODES + i)
                for i in range(NODES)
            ],
        )  # fmt: skip
        node_ids = [r[0] for r in con.execute("SELECT id FROM nodes WHERE workspace_id = ?", (ws,))]
        sources = json.dumps([{"ip": "198.51.100.7", "pps": 1000.0, "bps": 0.0, "country": None}])
        rows = []
        for i in range(INCIDENTS):
            start = now - rng.uniform(0, 365 * 86400)
            active = i % 500 == 0
            rows.append(
                (str(uuid.uuid4()), ws, rng.choice(node_ids), "udp_flood",
                 rng.choice(("low", "medium", "high", "critical")),
                 "active" if active else "resolved", start,
                 None if active else start + 60, start + 1.5, rng.uniform(1e4, 1e7),
                 rng.uniform(1e7, 1e10), '{"udp": 90.0}', sources, "[]", start)
            )  # fmt: skip
        con.executemany(
            """INSERT INTO incidents (uuid, workspace_id, node_id, family, severity, status,
               started_at, ended_at, mitigated_at, peak_pps, peak_bps, protocols, top_sources,
               mitigation_rules, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            rows,
        )
    con.execute("ANALYZE")
    con.close()


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _p(samples: list[float], q: float) -> str:
    median, high = statistics.median(samples), _pct(samples, q)
    return f"p50 {median:7.1f} ms  p{round(q * 100)} {high:7.1f} ms"


def _render(client: httpx.Client, paths: list[str]) -> float:
    t0 = time.perf_counter()
    for path in paths:
        client.get(path).raise_for_status()
    return (time.perf_counter() - t0) * 1000


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_percent(pid: int, seconds: float) -> float:
    before, t0 = _cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (_cpu_s(pid) - before) / (time.monotonic() - t0)


class Poster(threading.Thread):
    """An agent posting one point per second until stopped."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.headers, self.stop = base, headers, threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.wait(1.0):
                point = {"ts": time.time(), "pps": 1000.0, "bps": 8e6}
                client.post("/api/v1/agent/metrics", json={"points": [point]}, headers=self.headers)


async def _hold_streams(
    base: str, cookie: str, path: str, count: int, opened: threading.Event, done: asyncio.Event
) -> int:
    """Open `count` streams, read them until `done`; returns the points they received."""
    received = 0
    ready = 0
    all_ready = asyncio.Event()

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal received, ready
        async with client.stream("GET", path) as response:
            lines = response.aiter_lines()
            async for line in lines:
                if line.startswith("event: hello"):
                    ready += 1
                    if ready == count:
                        all_ready.set()
                elif line.startswith("event: point"):
                    received += 1

    async with httpx.AsyncClient(
        base_url=base, headers={"Cookie": cookie}, timeout=httpx.Timeout(30.0, read=60.0),
        limits=httpx.Limits(max_connections=count + 5),
    ) as client:  # fmt: skip
        tasks = [asyncio.create_task(one(client)) for _ in range(count)]
        await all_ready.wait()
        opened.set()
        await done.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return received


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        db_path = str(Path(tmp) / "bench.db")
        asyncio.run(_workspace(db_path))
        _seed(db_path)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "serve", "--port", str(port), "--db", db_path,
             "--insecure-cookies"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        rows: list[tuple[str, str]] = []
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if client.get("/api/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                r = client.post("/api/dash/login", json={"email": EMAIL, "password": PASSWORD})
                r.raise_for_status()
                cookie = r.headers["set-cookie"].split(";", 1)[0]
                node_uuid = client.get("/api/dash/nodes?limit=1").json()["nodes"][0]["uuid"]
                # a node whose key we know, for the agent posts
                ws_token = _token(db_path)
                deploy = client.post(
                    "/api/deploy", json={"name": "live", "ip": "192.0.2.9"},
                    headers={"Authorization": f"Bearer {ws_token}"},
                )  # fmt: skip
                deploy.raise_for_status()
                live_uuid, key = deploy.json()["node_uuid"], deploy.json()["api_key"]
                agent = {"Authorization": f"Bearer {key}", "X-Node-UUID": live_uuid}

                fed_s = _feed_history(base, db_path)
                rows.append((f"Agent API: {NODES:,} nodes x {BACKFILL_S} points posted",
                             f"{fed_s:7.1f} s"))  # fmt: skip
                for label, path in (
                    (f"overview ({NODES:,} nodes x {BACKFILL_S} s)", "/api/dash/live"),
                    (f"node page ({BACKFILL_S} s)", f"/api/dash/live/nodes/{node_uuid}"),
                ):
                    samples = [_backfill_ms(client, path) for _ in range(BACKFILL_OPENS)]
                    rows.append((f"stream open -> backfill: {label}", _p(samples, 0.95)))

                pages = {
                    f"overview ({NODES:,} nodes, {INCIDENTS:,} incidents)": [
                        "/dash", "/api/dash/me", "/api/dash/status",
                        "/api/dash/incidents?status=active&limit=20",
                    ],
                    "node page": [
                        f"/dash/nodes/{node_uuid}", "/api/dash/me", f"/api/dash/nodes/{node_uuid}",
                        f"/api/dash/nodes/{node_uuid}/agent", f"/api/dash/nodes/{node_uuid}/rules",
                        f"/api/dash/incidents?limit=10&node={node_uuid}",
                    ],
                }  # fmt: skip
                for label, paths in pages.items():
                    for _ in range(5):
                        _render(client, paths)
                    samples = [_render(client, paths) for _ in range(RENDERS)]
                    rows.append((f"first render requests: {label}", _p(samples, 0.99)))

                latencies = _push_latencies(base, cookie, live_uuid, agent)
                rows.append(("push: agent POST -> point on an open stream", _p(latencies, 0.95)))

                idle = _cpu_with_viewers(base, cookie, live_uuid, agent, server.pid, 0)
                busy = _cpu_with_viewers(base, cookie, live_uuid, agent, server.pid, VIEWERS)
                rows.append(("ftcontrol CPU, 1 point/s, no page open", f"{idle[0]:5.1f} %"))
                rows.append(
                    (f"ftcontrol CPU, 1 point/s, {VIEWERS} open node pages",
                     f"{busy[0]:5.1f} %  ({busy[1]} points delivered in {CPU_WINDOW_S:g} s)")
                )  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)
    width = max(len(label) for label, _ in rows)
    print(f"dashboard on loopback, {RENDERS} renders, {PUSHES} pushes (sequential requests)")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def node_key(i: int) -> str:
    return f"{i:064x}"  # the seeded node i's API key (only its hash is stored)


def _feed_history(base: str, db_path: str) -> float:
    """Every seeded node posts the charts' window of one-second points; seconds taken."""
    with sqlite3.connect(db_path) as con:
        nodes = con.execute("SELECT uuid, name FROM nodes WHERE name LIKE 'node-%'").fetchall()
    end = int(time.time())
    points = [{"ts": float(t), "pps": 1000.0, "bps": 8e6, "protocols": {"tcp": 700.0,
               "udp": 300.0}} for t in range(end - BACKFILL_S, end)]  # fmt: skip

    async def run() -> None:
        gate = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:

            async def one(node_uuid: str, name: str) -> None:
                key = node_key(int(name.removeprefix("node-")))
                headers = {"Authorization": f"Bearer {key}", "X-Node-UUID": node_uuid}
                async with gate:
                    r = await client.post(
                        "/api/v1/agent/metrics", json={"points": points}, headers=headers
                    )
                    r.raise_for_status()

            await asyncio.gather(*(one(u, n) for u, n in nodes))

    t0 = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - t0


def _backfill_ms(client: httpx.Client, path: str) -> float:
    """From opening a live stream to its backfill event, read to the end."""
    t0 = time.perf_counter()
    with client.stream("GET", path) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "backfill":
                json.loads(line[5:])
                return (time.perf_counter() - t0) * 1000
    raise RuntimeError(f"{path}: the stream ended before its backfill")


def _token(db_path: str) -> str:
    """A fresh deploy token for the bench workspace (rotated: only hashes are stored)."""
    from control.workspace.service import rotate_token

    async def rotate() -> str:
        db = await open_db(db_path)
        try:
            return await rotate_token(db, "dash")
        finally:
            await db.close()

    return asyncio.run(rotate())


def _push_latencies(base: str, cookie: str, node: str, agent: dict[str, str]) -> list[float]:
    sent: dict[float, float] = {}
    arrived: dict[float, float] = {}
    ready = threading.Event()

    def reader() -> None:
        with (
            httpx.Client(base_url=base, headers={"Cookie": cookie}, timeout=30) as client,
            client.stream("GET", f"/api/dash/live/nodes/{node}") as response,
        ):
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                if line.startswith("event: hello"):
                    ready.set()
                elif line.startswith("data:") and event == "point":
                    pps = json.loads(line[5:])["pps"]
                    arrived[pps] = time.perf_counter()
                    if len(arrived) >= PUSHES:
                        return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    ready.wait(30)
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(PUSHES):
            pps = float(i + 1)
            point = {"ts": time.time(), "pps": pps, "bps": pps * 8000}
            sent[pps] = time.perf_counter()
            client.post("/api/v1/agent/metrics", json={"points": [point]}, headers=agent)
            time.sleep(0.05)
    thread.join(30)
    return [(arrived[k] - sent[k]) * 1000 for k in sent if k in arrived]


def _cpu_with_viewers(
    base: str, cookie: str, node: str, agent: dict[str, str], pid: int, viewers: int
) -> tuple[float, int]:
    poster = Poster(base, agent)
    result: list[int] = []
    loop_ready, opened = threading.Event(), threading.Event()
    done_holder: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def hold() -> None:
        async def run() -> None:
            done = asyncio.Event()
            done_holder.append((asyncio.get_running_loop(), done))
            loop_ready.set()
            path = f"/api/dash/live/nodes/{node}"
            result.append(await _hold_streams(base, cookie, path, viewers, opened, done))

        asyncio.run(run())

    holder = threading.Thread(target=hold, daemon=True)
    if viewers:
        holder.start()
        loop_ready.wait(30)
        opened.wait(60)  # every stream has said hello: measure the steady state only
    poster.start()
    cpu = _cpu_percent(pid, CPU_WINDOW_S)
    poster.stop.set()
    poster.join(10)
    if viewers:
        loop, done = done_holder[0]
        loop.call_soon_threadsafe(done.set)
        holder.join(30)
    return cpu, (result[0] if result else 0)

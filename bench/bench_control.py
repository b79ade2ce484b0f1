"""Control plane benchmark: list latencies with a large store, and deploy throughput.

Seeds a fresh SQLite file with bulk SQL (10,000 nodes; 100,000 incidents), starts the real
`ftcontrol serve` on a free loopback port and measures sequential requests over HTTP
(keep-alive, one client), so the numbers include uvicorn, Litestar, auth and the store.
Goal on a 2-core machine: p99 under 50 ms. Prints a table; asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from control.core.db import open_db
from control.core.security import hash_secret
from control.workspace.service import create_workspace

NODES = 10_000
INCIDENTS = 100_000
INCIDENT_NODES = 200
SAMPLES = 300
ANALYTICS_SAMPLES = 30
DEPLOYS = 300
FAMILIES = ("udp_flood", "syn_flood", "dns_amplification", "icmp_flood", "multi_vector")
SEVERITIES = ("low", "medium", "high", "critical")


async def _workspaces(db_path: str) -> tuple[str, str, str]:
    db = await open_db(db_path)
    try:
        _, nodes_token = await create_workspace(db, "nodes", "enterprise")
        _, incidents_token = await create_workspace(db, "incidents", "enterprise")
        _, deploy_token = await create_workspace(db, "deploys", "enterprise")
    finally:
        await db.close()
    return nodes_token, incidents_token, deploy_token


def _seed(db_path: str) -> None:
    rng = random.Random(7)
    now = time.time()
    con = sqlite3.connect(db_path)
    with con:
        ids = dict(con.execute("SELECT name, id FROM workspaces"))

        def node_rows(workspace_id: int, count: int, prefix: str) -> list[tuple[object, ...]]:
            rows: list[tuple[object, ...]] = []
            for i in range(count):
                seen = now - rng.choice((5, 5, 5, 5000)) if i % 10 else None
                rows.append(
                    (
                        str(uuid.uuid4()),
                        workspace_id,
                        f"{prefix}-{i:05d}",
                        f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                        "bench",
                        "linux",
                        "eth0",
                        "normal",
                        hash_secret(f"{prefix}-{i}"),
                        rng.uniform(100, 10_000),
                        seen,
                        3000.0,
                        8000.0,
                        json.dumps({"tcp": 70.0, "udp": 30.0}),
                        now - NODES + i,
                    )
                )
            return rows

        node_sql = """INSERT INTO nodes (uuid, workspace_id, name, ip, location, os, interface,
            priority, api_key_hash, last_pps, last_seen, baseline_avg_pps, baseline_p95_pps,
            baseline_protocols, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"""
        con.executemany(node_sql, node_rows(ids["nodes"], NODES, "node"))
        con.executemany(node_sql, node_rows(ids["incidents"], INCIDENT_NODES, "victim"))
        victims = [
            r[0]
            for r in con.execute("SELECT id FROM nodes WHERE workspace_id = ?", (ids["incidents"],))
        ]
        sources = json.dumps([{"ip": "198.51.100.7", "pps": 1000.0, "bps": 0.0, "country": None}])
        rules = json.dumps(
            [
                {
                    "kind": "signature",
                    "match": "udp sport 53",
                    "action": "drop",
                    "ttl_sec": 300,
                    "dropped_packets": 10,
                }
            ]
        )
        incident_rows = []
        for i in range(INCIDENTS):
            start = now - rng.uniform(0, 365 * 86400)
            active = i % 500 == 0
            incident_rows.append(
                (
                    str(uuid.uuid4()),
                    ids["incidents"],
                    rng.choice(victims),
                    rng.choice(FAMILIES),
                    rng.choice(SEVERITIES),
                    "active" if active else "resolved",
                    start,
                    None if active else start + rng.uniform(10, 3600),
                    start + 1.5,
                    rng.uniform(1e4, 1e7),
                    rng.uniform(1e7, 1e10),
                    '{"udp": 90.0, "tcp": 10.0}',
                    sources,
                    rules,
                    start,
                )
            )
        con.executemany(
            """INSERT INTO incidents (uuid, workspace_id, node_id, family, severity, status,
                started_at, ended_at, mitigated_at, peak_pps, peak_bps, protocols, top_sources,
                mitigation_rules, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            incident_rows,
        )
    con.execute("ANALYZE")
    con.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99, ordered[-1]


def _time_gets(
    client: httpx.Client, path: str, token: str, samples_wanted: int
) -> tuple[float, float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(5):  # warm-up: connection, statement caches
        client.get(path, headers=headers).raise_for_status()
    samples = []
    for _ in range(samples_wanted):
        t0 = time.perf_counter()
        client.get(path, headers=headers).raise_for_status()
        samples.append((time.perf_counter() - t0) * 1000)
    return _percentiles(samples)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-control-") as tmp:
        db_path = str(Path(tmp) / "bench.db")
        t0 = time.perf_counter()
        nodes_token, incidents_token, deploy_token = asyncio.run(_workspaces(db_path))
        _seed(db_path)
        seed_s = time.perf_counter() - t0
        port = _free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(
            [sys.executable, "-m", "control.cli", "serve", "--port", str(port), "--db", db_path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
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
                rows: list[tuple[str, str]] = []
                for label, path, token in (
                    (f"GET /api/v1/nodes ({NODES:,} nodes)", "/api/v1/nodes", nodes_token),
                    (
                        "  ?limit=100&offset=9900",
                        "/api/v1/nodes?limit=100&offset=9900",
                        nodes_token,
                    ),
                    ("  ?status=online", "/api/v1/nodes?status=online", nodes_token),
                    (
                        f"GET /api/v1/incidents ({INCIDENTS:,})",
                        "/api/v1/incidents",
                        incidents_token,
                    ),
                    (
                        "  ?severity=critical&status=resolved",
                        "/api/v1/incidents?severity=critical&status=resolved",
                        incidents_token,
                    ),
                    (
                        "  ?limit=100&offset=99000",
                        "/api/v1/incidents?limit=100&offset=99000",
                        incidents_token,
                    ),
                ):
                    p50, p99, worst = _time_gets(client, path, token, SAMPLES)
                    rows.append((label, f"{p50:8.2f} {p99:8.2f} {worst:8.2f}"))
                # A full-range scan of every incident: slower by nature, fewer samples.
                for label, path, token in (
                    (
                        "GET /api/v1/analytics/summary?range=365d",
                        "/api/v1/analytics/summary?range=365d",
                        incidents_token,
                    ),
                    ("GET /api/v1/status (10,000 nodes)", "/api/v1/status", nodes_token),
                ):
                    p50, p99, worst = _time_gets(client, path, token, ANALYTICS_SAMPLES)
                    rows.append((label, f"{p50:8.2f} {p99:8.2f} {worst:8.2f}"))
                headers = {"Authorization": f"Bearer {deploy_token}"}
                t1 = time.perf_counter()
                for i in range(DEPLOYS):
                    client.post(
                        "/api/deploy", headers=headers, json={"name": f"d-{i}", "ip": "192.0.2.1"}
                    ).raise_for_status()
                deploy_rate = DEPLOYS / (time.perf_counter() - t1)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"seeded {NODES:,} nodes + {INCIDENTS:,} incidents in {seed_s:.1f} s; "
        f"{SAMPLES} sequential requests per row ({ANALYTICS_SAMPLES} for the last two) "
        "over HTTP (ftcontrol serve)"
    )
    print(f"{'request':<44} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, numbers in rows:
        print(f"{label:<44} {numbers}")
    print(f"{'POST /api/deploy (sequential)':<44} {deploy_rate:8.0f} per second")
    print("goal: p99 < 50 ms")


if __name__ == "__main__":
    main()

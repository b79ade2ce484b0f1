"""The real `ftcontrol serve` process on a free loopback port, driven by the reference's curl."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.capability import require


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ftcontrol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    db = str(tmp_path / "served.db")
    created = _ftcontrol("workspace", "create", "acme", "--plan", "pro", "--db", db)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "control.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            db,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ftcontrol serve did not come up"
            time.sleep(0.1)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def curl(*args: str) -> tuple[int, Any]:
    """Run curl as the reference does; returns (HTTP status, decoded JSON body)."""
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_reference_curl_flows(server: tuple[str, str]) -> None:
    require(shutil.which("curl") is not None, "curl")
    base, token = server
    auth = ["-H", f"Authorization: Bearer {token}"]
    as_json = ["-H", "Content-Type: application/json"]

    status, health = curl(f"{base}/api/health")
    assert (status, health) == (200, {"status": "ok"})

    status, deployed = curl(
        "-X",
        "POST",
        f"{base}/api/deploy",
        *auth,
        *as_json,
        "-d",
        '{"name":"web-prod-1","ip":"203.0.113.10"}',
    )
    assert status == 200 and deployed["ok"] is True
    assert (deployed["name"], deployed["ip"], len(deployed["api_key"])) == (
        "web-prod-1",
        "203.0.113.10",
        64,
    )
    uuid = deployed["node_uuid"]
    status, dup = curl(
        "-X",
        "POST",
        f"{base}/api/deploy",
        *auth,
        *as_json,
        "-d",
        '{"name":"web-prod-1","ip":"203.0.113.10"}',
    )
    assert status == 409 and dup["ok"] is False
    status, missing = curl(
        "-X", "POST", f"{base}/api/deploy", *as_json, "-d", '{"name":"x","ip":"203.0.113.11"}'
    )
    assert status == 401 and missing["ok"] is False

    status, nodes = curl(*auth, f"{base}/api/v1/nodes")
    assert status == 200 and nodes["total"] == 1 and nodes["nodes"][0]["uuid"] == uuid
    status, node = curl(*auth, f"{base}/api/v1/nodes/{uuid}")
    assert status == 200 and node["node"]["baseline"] is None
    status, patched = curl(
        "-X",
        "PATCH",
        *auth,
        *as_json,
        "-d",
        '{"location":"US-East","priority":"high"}',
        f"{base}/api/v1/nodes/{uuid}",
    )
    assert status == 200 and (patched["node"]["location"], patched["node"]["priority"]) == (
        "US-East",
        "high",
    )

    status, incidents = curl(*auth, f"{base}/api/v1/incidents")
    assert status == 200 and (incidents["ok"], incidents["total"]) == (True, 0)

    status, channel = curl(
        "-X",
        "POST",
        *auth,
        *as_json,
        "-d",
        '{"name":"Alerts","type":"discord","config":{"webhook_url":'
        '"http://127.0.0.1:9/api/webhooks/1/abcdefghijklmnop"}}',
        f"{base}/api/v1/channels",
    )
    assert status == 201 and "abcdefghijkl" not in json.dumps(channel)
    status, channels = curl(*auth, f"{base}/api/v1/channels")
    assert status == 200 and [c["name"] for c in channels["channels"]] == ["Alerts"]
    status, deleted = curl(
        "-X", "DELETE", *auth, f"{base}/api/v1/channels/{channel['channel']['id']}"
    )
    assert (status, deleted) == (200, {"ok": True})

    status, workspace = curl(*auth, f"{base}/api/v1/workspace")
    assert status == 200 and workspace["workspace"]["node_count"] == 1
    status, summary = curl(*auth, f"{base}/api/v1/analytics/summary?range=7d")
    assert status == 200 and summary["incidents_total"] == 0
    status, overview = curl(*auth, f"{base}/api/v1/status")
    assert status == 200 and overview["nodes_total"] == 1 and overview["overall"] == "degraded"

    status, gone = curl("-X", "DELETE", *auth, f"{base}/api/v1/nodes/{uuid}")
    assert (status, gone) == (200, {"ok": True})
    status, after = curl(*auth, f"{base}/api/v1/nodes/{uuid}")
    assert status == 404 and after["ok"] is False

    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'ftcontrol_nodes{status="offline",workspace="acme"} 0.0' in metrics
    assert (httpx.get(f"{base}/schema/openapi.json", timeout=5)).json()["openapi"].startswith("3.")


def _serve_and_read_log(tmp_path: Path, *extra: str) -> str:
    """Serve, make a few requests, stop; everything the process wrote."""
    db = str(tmp_path / f"log{len(extra)}.db")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "control.cli", "serve", "--port", str(port), "--db", db, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        served = 0
        while served < 5:
            assert proc.poll() is None, "ftcontrol serve exited"
            try:
                served += httpx.get(f"{base}/api/health", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.1)
            assert time.monotonic() < deadline, "ftcontrol serve did not come up"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    return out


def test_a_quiet_control_plane_writes_no_line_per_request_unless_asked(tmp_path: Path) -> None:
    quiet = _serve_and_read_log(tmp_path)
    assert "Application startup complete" in quiet  # its own INFO lines still show
    assert "GET /api/health" not in quiet
    loud = _serve_and_read_log(tmp_path, "--log-level", "debug")
    assert loud.count("GET /api/health") >= 5

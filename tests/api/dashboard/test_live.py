"""Live data: what the Agent API ingests reaches open server-sent-event streams.

A real `ftcontrol serve` on loopback (an SSE stream never ends, so it is read over a real
socket), a real agent post, a real browser-like session."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.cli import SHUTDOWN_GRACE_S
from tests.api.served import Served, served_control

PASSWORD = "correct horse battery"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Served]:
    with served_control(tmp_path, isolated=False, extra_args=["--insecure-cookies"]) as srv:
        srv.start()
        yield srv


def _user(srv: Served, email: str, workspace: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "control.cli", "user", "create", email, "--workspace", workspace,
         "--role", "viewer", "--db", str(srv.db)],
        input=PASSWORD, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _session(srv: Served, email: str) -> httpx.Client:
    client = httpx.Client(base_url=srv.base, timeout=httpx.Timeout(10.0))
    r = client.post("/api/dash/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of an SSE stream; comments (keep-alives) skipped."""
    event, data = "message", ""
    for line in lines:
        if line == "":
            if data:
                yield event, data
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()


def _next(events: Iterator[tuple[str, str]], kind: str) -> dict[str, object]:
    for event, data in events:
        if event == kind:
            parsed: dict[str, object] = json.loads(data)
            return parsed
    raise AssertionError(f"stream ended before a {kind!r} event")


def test_agent_metrics_and_incidents_reach_open_streams(srv: Served) -> None:
    acme, other = srv.workspace("acme"), srv.workspace("globex")
    node, other_node = srv.node(acme, "edge-1"), srv.node(other, "edge-x")
    _user(srv, "ops@acme.example", "acme")
    _user(srv, "ops@globex.example", "globex")
    with ExitStack() as stack:
        streams = {}
        for name, email, path in (
            ("node", "ops@acme.example", f"/api/dash/live/nodes/{node.uuid}"),
            ("overview", "ops@acme.example", "/api/dash/live"),
            ("other", "ops@globex.example", "/api/dash/live"),
        ):
            client = _session(srv, email)
            stack.callback(client.close)
            response = stack.enter_context(client.stream("GET", path))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response.iter_lines())
            _next(events, "hello")  # subscribed from here on
            streams[name] = events

        now = time.time()
        # The other workspace's agent posts first: its point must never reach acme's pages.
        r = srv.request("POST", "/api/v1/agent/metrics", headers=other_node.headers,
                        json={"points": [{"ts": now - 1, "pps": 7.0, "bps": 56.0}]})  # fmt: skip
        assert r.status_code == 200, r.text
        points = [
            {"ts": now, "pps": 12000.0, "bps": 9.6e7, "dropped_pps": 11000.0,
             "protocols": {"udp": 11500.0, "tcp": 500.0}, "attack": True,
             "baseline_avg_pps": 400.0, "baseline_p95_pps": 650.0},
        ]  # fmt: skip
        r = srv.request(
            "POST", "/api/v1/agent/metrics", headers=node.headers, json={"points": points}
        )
        assert r.status_code == 200, r.text

        for name in ("node", "overview"):
            got = _next(streams[name], "point")
            assert got["node"] == node.uuid, (name, got)
            assert (got["pps"], got["dropped_pps"], got["attack"]) == (12000.0, 11000.0, True)
            assert got["protocols"] == {"udp": 11500.0, "tcp": 500.0}
            assert (got["baseline_avg_pps"], got["baseline_p95_pps"]) == (400.0, 650.0)
        got = _next(streams["other"], "point")
        assert (got["node"], got["pps"]) == (other_node.uuid, 7.0)

        incident = str(uuid.uuid4())
        body = {"uuid": incident, "started_at": now - 3,
                "figures": {"seq": 1, "family": "udp_flood", "severity": "high",
                            "peak_pps": 12000.0}}  # fmt: skip
        r = srv.request("POST", "/api/v1/agent/incidents", headers=node.headers, json=body)
        assert r.status_code == 201, r.text
        opened = _next(streams["overview"], "incident")
        assert (opened["kind"], opened["uuid"]) == ("opened", incident)


def test_a_stream_of_another_workspaces_node_is_not_found(srv: Served) -> None:
    acme, other = srv.workspace("acme"), srv.workspace("globex")
    theirs = srv.node(other, "edge-x")
    srv.node(acme, "edge-1")
    _user(srv, "ops@acme.example", "acme")
    client = _session(srv, "ops@acme.example")
    try:
        r = client.get(f"/api/dash/live/nodes/{theirs.uuid}")
        assert r.status_code == 404 and r.json()["ok"] is False
    finally:
        client.close()
    r = httpx.get(f"{srv.base}/api/dash/live", timeout=10)
    assert r.status_code == 401


def test_serve_stops_promptly_with_a_stream_open(srv: Served) -> None:
    """An open page must not keep `ftcontrol serve` from stopping (systemd stop, restart)."""
    srv.workspace("acme")
    _user(srv, "ops@acme.example", "acme")
    client = _session(srv, "ops@acme.example")
    try:
        with client.stream("GET", "/api/dash/live") as response:
            events = _events(response.iter_lines())
            _next(events, "hello")
            assert srv.proc is not None
            srv.proc.terminate()
            # uvicorn waits this long for open connections, then ends them (and exits
            # by the signal it got, re-raised)
            srv.proc.wait(timeout=SHUTDOWN_GRACE_S + 20)
    except httpx.HTTPError:
        pass  # the server ended the stream: what it should do
    finally:
        client.close()
    assert srv.proc is not None
    assert srv.proc.returncode in (0, -signal.SIGTERM), srv.log.read_text()[-2000:]
    assert "Traceback" not in srv.log.read_text()


def test_a_stream_opens_with_the_last_minutes_then_goes_live(srv: Served) -> None:
    """A page opened mid-attack draws the last minutes at once (the node page: one read of
    the stored points when its stream opens; the overview: the hub's running totals), then
    the live points; never another workspace's."""
    acme, other = srv.workspace("acme"), srv.workspace("globex")
    node, second, theirs = srv.node(acme, "edge-1"), srv.node(acme, "edge-2"), srv.node(other, "x")
    _user(srv, "ops@acme.example", "acme")
    now = int(time.time())
    history: list[dict[str, Any]] = [
        {"ts": float(t), "pps": 1000.0 + t % 7, "bps": 8e6, "dropped_pps": 900.0,
         "protocols": {"udp": 990.0, "tcp": 10.0}, "attack": True,
         "baseline_avg_pps": 40.0, "baseline_p95_pps": 60.0}
        for t in range(now - 120, now - 1)
    ]  # fmt: skip
    for who, points in ((node, history), (second, history[-30:]), (theirs, history)):
        r = srv.request("POST", "/api/v1/agent/metrics", headers=who.headers,
                        json={"points": points})  # fmt: skip
        assert r.status_code == 200, r.text
    # Before the charts' window, and a resend of a second already reported.
    old = {"ts": float(now - 600), "pps": 5.0, "bps": 40.0}
    resent = {**history[-1], "pps": 123456.0}
    r = srv.request(
        "POST", "/api/v1/agent/metrics", headers=node.headers, json={"points": [old, resent]}
    )
    assert r.status_code == 200, r.text

    client = _session(srv, "ops@acme.example")
    try:
        with client.stream("GET", f"/api/dash/live/nodes/{node.uuid}") as response:
            events = _events(response.iter_lines())
            _next(events, "hello")
            got: Any = _next(events, "backfill")["points"]
            assert [p["ts"] for p in got] == [p["ts"] for p in history]
            first = got[0]
            assert (first["pps"], first["dropped_pps"], first["attack"]) == (
                history[0]["pps"], 900.0, True,
            )  # fmt: skip
            assert first["protocols"] == {"udp": 990.0, "tcp": 10.0}
            assert (first["baseline_avg_pps"], first["baseline_p95_pps"]) == (40.0, 60.0)
            live = {"ts": float(now), "pps": 77.0, "bps": 616.0}
            r = srv.request(
                "POST", "/api/v1/agent/metrics", headers=node.headers, json={"points": [live]}
            )
            assert r.status_code == 200, r.text
            assert _next(events, "point")["pps"] == 77.0

        with client.stream("GET", "/api/dash/live") as response:
            events = _events(response.iter_lines())
            _next(events, "hello")
            overview: Any = _next(events, "backfill")
            totals = {ts: (pps, dropped) for ts, pps, dropped in overview["totals"]}
            # Summed over acme's two nodes, each second once (the resent and the too old
            # point left out); globex's node not at all.
            expect = {}
            for p in history:
                both = p["ts"] >= history[-30]["ts"]
                expect[int(p["ts"])] = (p["pps"] * (2 if both else 1), 900.0 * (2 if both else 1))
            expect[now] = (77.0, 0.0)  # the live point posted while the node page was open
            assert totals == expect
    finally:
        client.close()

"""A real HTTP server on 127.0.0.1 that speaks the Agent/Deploy API's reply shapes and
records every request, for the reporter's and deploy command's unit tests.

Fleet orders (`GET /api/v1/agent/fleet?after=V&wait=S`, the contract's `FleetOrders`):
served only once a test sets them (`set_fleet`; before that the route is a 404, as on
an older control plane), with the long poll's semantics: an answer at once when the
version is not V, else held until it moves or S seconds pass. The real control plane's
endpoint is built on another branch; this stands in for it until the merge.

It can be stopped (connections refused: a real outage) and started again on the same
port, or told to answer every request with a given status code.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from ftcontract import agent_api


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    force_status: int | None = None
    # path suffix -> status, for one kind of request only
    status_for: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(
        default_factory=lambda: {"config_version": 1, "thresholds": {}, "commands": []}
    )
    # metrics posts holding a point with one of these timestamps are refused (400)
    bad_metric_ts: set[float] = field(default_factory=set)
    deploy_reply: dict[str, Any] = field(
        default_factory=lambda: {
            "ok": True,
            "node_uuid": "0b7c6a52-3d1e-4f7e-9a61-2c3d4e5f6a7b",
            "api_key": "ab" * 32,
            "name": "n",
            "ip": "192.0.2.1",
        }
    )


class LoopbackControlPlane:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []  # answered with success
        self.refused: list[Recorded] = []  # answered with an error status
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.fleet: agent_api.FleetOrders | None = None  # None: no /fleet route (404)
        self._fleet_moved = threading.Condition(self._lock)

    def set_fleet(self, orders: agent_api.FleetOrders) -> None:
        """New fleet orders (a new version): held polls answer at once."""
        with self._fleet_moved:
            self.fleet = orders
            self._fleet_moved.notify_all()

    def _fleet_reply(self, query: str) -> tuple[int, Any]:
        q = parse_qs(query)
        after = int(q.get("after", ["0"])[0])
        wait = min(float(q.get("wait", ["0"])[0]), 30.0)
        deadline = time.monotonic() + wait
        with self._fleet_moved:
            while (
                self.fleet is not None
                and self.fleet.version == after
                and time.monotonic() < deadline
            ):
                self._fleet_moved.wait(deadline - time.monotonic())
            orders = self.fleet
        if orders is None:
            return 404, {"ok": False, "error": "no route"}
        return 200, msgspec.to_builtins(orders)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(self.command, self.path, dict(self.headers.items()), body)
                status, reply = plane._reply(rec)
                with plane._lock:
                    (plane.requests if status < 400 else plane.refused).append(rec)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle
            do_POST = _handle

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _reply(self, rec: Recorded) -> tuple[int, dict[str, Any]]:
        b = self.behaviour
        if b.force_status is not None:
            return b.force_status, {"ok": False, "error": "forced by the test"}
        for suffix, status in b.status_for.items():
            if rec.path.endswith(suffix):
                return status, {"ok": False, "error": f"refused {suffix}"}
        path = rec.path.removeprefix("/api/v1/agent/")
        if path.startswith("fleet"):
            return self._fleet_reply(urlsplit(rec.path).query)
        if rec.path == "/api/deploy":
            return 200, b.deploy_reply
        if path == "heartbeat":
            pending = len(b.config.get("commands", []))
            version = b.config["config_version"]
            return 200, {
                "ok": True,
                "status": "online",
                "config_version": version,
                "pending_commands": pending,
            }
        if path == "config":
            return 200, {"ok": True, "config": b.config}
        if path == "metrics":
            if any(p["ts"] in b.bad_metric_ts for p in json.loads(rec.body)["points"]):
                return 400, {"ok": False, "error": "points[?].pps: must be >= 0"}
            reply = {"ok": True, "accepted": len(json.loads(rec.body)["points"])}
            if self.fleet is not None:
                reply["fleet_version"] = self.fleet.version
            return 200, reply
        if path.endswith("/pcap"):
            return 200, {"ok": True, "sha256": "0" * 64, "size": len(rec.body)}
        if path.startswith("incidents"):
            return 200, {"ok": True, "uuid": path.split("/")[-1], "status": "active"}
        if path == "commands/ack":
            return 200, {"ok": True}
        return 404, {"ok": False, "error": f"no route {rec.path}"}

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path.removeprefix("/api/v1/agent/") for r in self.requests]

    def fleet_polls(self) -> list[Recorded]:
        """Every /fleet request, answered or refused, in order."""
        with self._lock:
            both = self.requests + self.refused
        return [r for r in both if urlsplit(r.path).path == "/api/v1/agent/fleet"]

    def of(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.removeprefix("/api/v1/agent/") == path]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

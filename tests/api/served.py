"""A real `ftcontrol serve` for the hardening tests, optionally inside a network namespace.

Fuzzed channel configs can name any host; a control plane in a namespace that has only
its loopback (and a veth to a namespace of ours), with no default route, can reach
nothing but itself. The calling thread enters that namespace for each request
(`Served.inside()`), so sockets made there talk to the server's loopback.

    with served_control(tmp_path, isolated=True) as srv:
        with srv.inside():
            httpx.get(srv.base + "/api/health")
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lab.netns import Lab, enter_netns, nsenter_argv

SERVE_PORT = 18080


@dataclass
class Workspace:
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Node:
    uuid: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "X-Node-UUID": self.uuid}


@dataclass
class Served:
    db: Path
    log: Path
    port: int
    lab: Lab | None
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ns(self) -> str | None:
        return self.lab.victim_ns if self.lab else None

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Run the block's network calls where the server's loopback is."""
        if self.ns is None:
            yield
        else:
            with enter_netns(self.ns):
                yield

    def argv(self, argv: list[str]) -> list[str]:
        return nsenter_argv(self.ns, argv) if self.ns else argv

    # ---- process ----

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "control.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--db", str(self.db),
            *self.extra_args,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv(argv), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            try:
                if self.request("GET", "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ftcontrol serve did not come up"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        """SIGKILL the server process (with a namespace, nsenter exec()s it: same pid)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    # ---- requests ----

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("timeout", 10)
        with self.inside(), httpx.Client(base_url=self.base) as client:
            return client.request(method, path, **kw)

    def workspace(self, name: str, plan: str = "pro") -> Workspace:
        done = subprocess.run(
            [sys.executable, "-m", "control.cli", "workspace", "create", name,
             "--plan", plan, "--db", str(self.db)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return Workspace(name=name, token=done.stdout.strip())

    def node(self, ws: Workspace, name: str) -> Node:
        r = self.request(
            "POST", "/api/deploy", json={"name": name, "ip": "203.0.113.10"}, headers=ws.headers
        )
        assert r.status_code == 200, r.text
        body = r.json()
        return Node(uuid=body["node_uuid"], api_key=body["api_key"])

    def incident(self, node: Node) -> str:
        incident_uuid = str(uuid.uuid4())
        body = {
            "uuid": incident_uuid,
            "started_at": time.time() - 5,
            "figures": {
                "seq": 1,
                "family": "udp_flood",
                "severity": "high",
                "peak_pps": 250000.0,
                "top_sources": [{"ip": "198.51.100.7", "pps": 1000.0}],
            },
        }
        r = self.request("POST", "/api/v1/agent/incidents", json=body, headers=node.headers)
        assert r.status_code == 201, r.text
        return incident_uuid


@contextlib.contextmanager
def served_control(
    tmp_path: Path, *, isolated: bool, extra_args: list[str] | None = None
) -> Iterator[Served]:
    """A started server on a fresh database; `isolated` puts it in its own namespace."""
    lab = Lab.create() if isolated else None
    port = SERVE_PORT if isolated else _free_port()
    srv = Served(
        db=tmp_path / "ftcontrol.db",
        log=tmp_path / "ftcontrol.log",
        port=port,
        lab=lab,
        extra_args=list(extra_args or []),
    )
    try:
        yield srv
    finally:
        srv.stop()
        if lab is not None:
            lab.destroy()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port

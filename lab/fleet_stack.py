"""The fleet lab running: a real `ftcontrol serve` in the control-plane namespace, one real
`ftagent run` per victim namespace (registered through the Deploy API with `ftagent
deploy`, each with its own config and state directory), the victims' real services and
the client's resolver, for tests and the benchmark.

    with FleetStack(workdir, victims=4) as stack:
        stack.start()                       # lab, control plane, workspace + prefix, agents
        stack.get("/api/v1/incidents")      # the API, from inside the control namespace
        stack.health(0)                     # node 0's agent /health, from inside its namespace
        stack.floors(0)                     # node 0's detection floors, read from its config

The workspace declares VICTIM_PREFIX (`ftcontrol workspace prefixes ... add`): the group
that covers every victim. The agents reach the control plane over the bridge at
http://<control.v4>:CONTROL_PORT; nothing has a default route. Every process, the XDP
programs and the namespaces go with close() (also after a failure) and at exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import msgspec

from lab.collateral import Host
from lab.fleet import VICTIM_PREFIX, FleetLab
from lab.netns import enter_netns
from lab.services import (
    DNS_PORT,
    HTTP_PORTS,
    REPO_ROOT,
    UDP_SERVICE_PORT,
    UdpResponder,
    dns_answer,
    dual_stack_udp,
    start_http,
    stop_http,
    udp_service_answer,
)

T = TypeVar("T")
CONTROL_PORT = 8080
AGENT_HTTP_PORT = 9477  # each agent's /health, on its own namespace's loopback
WORKSPACE = "fleet-lab"
WEBHOOK_PORT = 9099  # the notification receiver, on the control namespace's loopback
# The last commit whose agent knows nothing of fleet orders (the contract only): what an
# older agent in a fleet looks like (it never calls /fleet, sends none of the new fields).
LEGACY_AGENT_COMMIT = "2eb7ea73c1fc15d8197df1ff395465593e17d751"


def agent_settings(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The lab's agent config: short baseline, cool-down and intervals; /health on the
    namespace's loopback; few samples during an attack (four agents share two cores)."""
    return {
        "agent": {"state_dir": str(state_dir), "poll_interval_ms": 100, "log_format": "json"},
        "baseline": {"window_s": 60, "min_samples": 3, "recompute_interval_s": 1},
        "detection": {"cooldown_s": 2.0},
        "mitigation": {"mode": "on", "rule_ttl_s": 10.0, "holddown_s": 2.0},
        "capture": {"pre_attack_s": 1.0, "attack_samples_per_s": 200},
        "http": {"enabled": True, "listen": "127.0.0.1", "port": AGENT_HTTP_PORT},
        "control": {
            "heartbeat_interval_s": 1.0,
            "metrics_interval_s": 1.0,
            "config_interval_s": 5.0,
            "config_interval_attack_s": 1.0,
            "timeout_s": 2.0,
        },
    }


@dataclass
class FleetNode:
    index: int
    host: Host
    name: str
    workdir: Path
    uuid: str = ""
    legacy: bool = False  # runs LEGACY_AGENT_COMMIT's agent
    agent: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.workdir / "ftagent.toml"


@dataclass
class Notifications:
    """What the control plane's webhook channel delivered: one JSON document per POST."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.documents if d.get("kind") == kind]


class _WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    received: Notifications


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with contextlib.suppress(ValueError), self.server.received.lock:
            self.server.received.documents.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class FleetStack:
    """Lab + control plane + deployed agents. `start()`, use, `close()` (idempotent)."""

    workdir: Path
    victims: int = 4
    # merged over agent_settings() per section, for every agent (e.g. lower floors)
    agent_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    control_args: list[str] = field(default_factory=list)  # more `ftcontrol serve` flags
    control_env: dict[str, str] = field(default_factory=dict)
    offline_after_s: float = 15.0
    lab: FleetLab | None = None
    token: str = ""
    nodes: list[FleetNode] = field(default_factory=list)
    control: subprocess.Popen[bytes] | None = None
    notifications: Notifications = field(default_factory=Notifications)
    _http: list[subprocess.Popen[str]] = field(default_factory=list)
    _udp: list[UdpResponder] = field(default_factory=list)
    _webhook: _WebhookServer | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def db(self) -> Path:
        return self.workdir / "ftcontrol.db"

    @property
    def server(self) -> str:
        return f"http://{self.lab_or_fail().control.v4}:{CONTROL_PORT}"

    def lab_or_fail(self) -> FleetLab:
        if self.lab is None:
            raise RuntimeError("the fleet stack is not started")
        return self.lab

    def start(self, on_step: Callable[[str], None] = lambda _: None) -> None:
        """The lab, the control plane, the workspace with its prefix, the services, and
        one deployed, running agent per victim. On failure: close() and raise."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            on_step(f"building the fleet lab ({self.victims} victims)")
            self.lab = FleetLab.create(self.victims)
            self.token = self._cli("workspace", "create", WORKSPACE, "--plan", "pro")
            self._cli("workspace", "prefixes", WORKSPACE, "add", VICTIM_PREFIX)
            on_step("starting the control plane in its namespace")
            self.start_control()
            self._start_webhook()
            on_step("starting the services (HTTP, UDP on every victim; the resolver)")
            self._start_services()
            self.nodes = [self._new_node(i) for i in range(self.victims)]
            on_step("registering the nodes with `ftagent deploy`")
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(self._deploy, self.nodes))
            on_step("starting `ftagent run` on every victim")
            for node in self.nodes:
                self.start_agent(node.index)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the agents (they detach XDP), services, control plane; remove the lab."""
        running = [n.agent for n in self.nodes if n.agent is not None]
        for agent in running:  # all told at once: each takes a while to detach and flush
            _signal(agent, signal.SIGCONT)  # a paused agent must see the SIGTERM
            _signal(agent, signal.SIGTERM)
        for node in self.nodes:
            _terminate(node.agent, grace_s=10.0)
            node.agent = None
        for proc in self._http:
            stop_http(proc)
        self._http.clear()
        for responder in self._udp:
            responder.close()
        self._udp.clear()
        if self._webhook is not None:
            self._webhook.shutdown()
            self._webhook.server_close()
            self._webhook = None
        self.stop_control()
        if self.lab is not None:
            self.lab.destroy()
            self.lab = None
        for fh in self._logs:
            with contextlib.suppress(OSError):
                fh.close()
        self._logs.clear()

    def __enter__(self) -> FleetStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log(self, name: str) -> IO[bytes]:
        fh = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(fh)
        return fh

    def _cli(self, *argv: str) -> str:
        """`ftcontrol ARGV --db DB` on this stack's database; its last output line."""
        argv_all = [sys.executable, "-m", "control.cli", *argv, "--db", str(self.db)]
        done = subprocess.run(argv_all, capture_output=True, text=True, check=False,
                              cwd=REPO_ROOT)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"ftcontrol {' '.join(argv)} failed: {done.stderr.strip()}")
        lines = done.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    # ---- the control plane ---------------------------------------------------------------

    def start_control(self) -> None:
        if self.control is not None and self.control.poll() is None:
            return
        env = {**os.environ, "FTCONTROL_DATA_DIR": str(self.workdir / "control-data"),
               "FTCONTROL_GAUGES_INTERVAL_S": "0.5", **self.control_env}  # fmt: skip
        lab = self.lab_or_fail()
        self.control = lab.popen(
            lab.control.ns,
            [sys.executable, "-m", "control.cli", "serve", "--host", "0.0.0.0",
             "--port", str(CONTROL_PORT), "--db", str(self.db),
             "--offline-after", str(self.offline_after_s), *self.control_args],
            stdout=self._log("ftcontrol"), stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT,
            start_new_session=True,
        )  # fmt: skip
        self.wait_until(self._control_answers, 30.0, "the control plane to answer")

    def stop_control(self) -> None:
        _terminate(self.control)
        self.control = None

    def _control_answers(self) -> bool:
        if self.control is not None and self.control.poll() is not None:
            raise RuntimeError(f"ftcontrol exited ({self.control.returncode}); see ftcontrol.log")
        try:
            return self.request("GET", "/api/health").status_code == 200
        except httpx.HTTPError:
            return False

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The control plane's API with the workspace's deploy token, from inside the
        control namespace (as an operator on that network would reach it)."""
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        with (
            enter_netns(self.lab_or_fail().control.ns),
            httpx.Client(base_url=self.server, timeout=5.0) as c,
        ):
            return c.request(method, path, headers=headers, **kw)

    def get(self, path: str, **params: Any) -> Any:
        r = self.request("GET", path, params=params)
        r.raise_for_status()
        return r.json()

    def incidents(self, **params: Any) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.get("/api/v1/incidents", **params)["incidents"]
        return body

    def api_node(self, i: int) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/api/v1/nodes/{self.nodes[i].uuid}")["node"]
        return body

    def _start_webhook(self) -> None:
        """A webhook channel of the workspace, delivered to a receiver on the control
        namespace's loopback: every notification the control plane sends, kept."""
        with enter_netns(self.lab_or_fail().control.ns):
            server = _WebhookServer(("127.0.0.1", WEBHOOK_PORT), _WebhookHandler)
        server.received = self.notifications
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True, name="webhook").start()  # fmt: skip
        self._webhook = server
        hook = {"url": f"http://127.0.0.1:{WEBHOOK_PORT}/hook", "secret": secrets.token_hex(16)}
        r = self.request("POST", "/api/v1/channels",
                         json={"name": "fleet-lab", "type": "webhook", "config": hook})  # fmt: skip
        if r.status_code != 201:
            raise RuntimeError(f"webhook channel refused ({r.status_code}): {r.text}")

    # ---- services ------------------------------------------------------------------------

    def _start_services(self) -> None:
        lab = self.lab_or_fail()
        with enter_netns(lab.client.ns):
            resolver = dual_stack_udp(DNS_PORT)
        self._udp.append(UdpResponder(resolver, dns_answer).start())
        for victim in lab.victims:
            self._serve_victim(victim)

    def _serve_victim(self, victim: Host) -> None:
        with enter_netns(victim.ns):
            sock = dual_stack_udp(UDP_SERVICE_PORT)
        self._udp.append(UdpResponder(sock, udp_service_answer).start())
        for port in HTTP_PORTS:
            self._http.append(start_http(victim.ns, port))

    # ---- the nodes -----------------------------------------------------------------------

    def _new_node(self, i: int, legacy: bool = False) -> FleetNode:
        host = self.lab_or_fail().victims[i]
        workdir = self.workdir / f"node{i}"
        workdir.mkdir(parents=True, exist_ok=True)
        return FleetNode(i, host, f"fleet-node-{i}", workdir, legacy=legacy)

    def _deploy(self, node: FleetNode) -> None:
        """`ftagent deploy` in the node's namespace (POST /api/deploy over the bridge),
        then the lab's settings merged into the config it wrote (mode 0600 kept)."""
        lab = self.lab_or_fail()
        done = lab.run(
            node.host.ns,
            [sys.executable, "-m", "ftagent.cli", "deploy", "--server", self.server,
             "--token", self.token, "--name", node.name, "--ip", node.host.v4,
             "--interface", node.host.ifname, "--config", str(node.config)],
            capture_output=True, text=True, cwd=REPO_ROOT,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"ftagent deploy of {node.name} failed: {done.stderr.strip()}")
        data = msgspec.toml.decode(node.config.read_bytes())
        node.uuid = str(data["control"]["node_uuid"])
        for section, values in agent_settings(node.workdir / "agent-state").items():
            data.setdefault(section, {}).update(values)
        for section, values in self.agent_extra.items():
            data.setdefault(section, {}).update(values)
        fd = os.open(node.config, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as fh:
            fh.write(msgspec.toml.encode(data))

    def add_node(self, legacy: bool = False) -> FleetNode:
        """One more victim with its services and a deployed, running agent
        (LEGACY_AGENT_COMMIT's agent when `legacy`)."""
        host = self.lab_or_fail().add_victim()
        self._serve_victim(host)
        node = self._new_node(len(self.nodes), legacy)
        self.nodes.append(node)
        self._deploy(node)
        self.start_agent(node.index)
        return node

    def start_agent(self, i: int) -> None:
        node = self.nodes[i]
        env = dict(os.environ)
        cwd = REPO_ROOT
        if node.legacy:
            cwd = legacy_agent_tree(self.workdir / "legacy-agent")
            env["PYTHONPATH"] = str(cwd)
        node.agent = self.lab_or_fail().popen(
            node.host.ns,
            [sys.executable, "-m", "ftagent.cli", "run", "--config", str(node.config)],
            stdout=self._log(f"ftagent-{i}"), stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip

    def stop_agent(self, i: int) -> None:
        _terminate(self.nodes[i].agent, grace_s=10.0)
        self.nodes[i].agent = None

    def running(self) -> list[int]:
        """The indexes of the nodes whose agent runs (stopped or exited ones left out)."""
        return [n.index for n in self.nodes if n.agent is not None and n.agent.poll() is None]

    def pause_agent(self, i: int, paused: bool = True) -> None:
        """SIGSTOP (or SIGCONT) node i's agent: its points stop arriving (its XDP program
        and rules stay in the kernel, their TTLs running)."""
        proc = self.nodes[i].agent
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"node {i}'s agent is not running")
        os.killpg(proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def health(self, i: int) -> dict[str, Any]:
        """Node i's agent /health, read inside its namespace."""
        with enter_netns(self.nodes[i].host.ns), httpx.Client(timeout=3.0) as c:
            r = c.get(f"http://127.0.0.1:{AGENT_HTTP_PORT}/health")
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def rx_packets(self) -> list[int]:
        """Every victim's received packets so far (its interface's counter, read inside its
        namespace): what reached it, before XDP."""
        from lab.rxrate import rx_packets

        counts = []
        for victim in self.lab_or_fail().victims:
            with enter_netns(victim.ns):
                counts.append(rx_packets(victim.ifname))
        return counts

    def floors(self, i: int) -> Any:
        """Node i's detection floors (ftagent.config.Floors), read from its config file as
        the agent reads it."""
        from ftagent.config import load

        return load(self.nodes[i].config).detection.floors

    def wait_agents_ready(self, timeout_s: float = 120.0) -> None:
        """Every agent answers /health with its XDP attached and its baseline ready, and
        the control plane lists every node online."""

        def ready() -> bool:
            for node in self.nodes:
                if node.agent is None or node.agent.poll() is not None:
                    raise RuntimeError(f"{node.name}'s agent exited; see ftagent-{node.index}.log")
            try:
                if not all(self.health(n.index).get("baseline_ready") for n in self.nodes):
                    return False
            except httpx.HTTPError:
                return False
            return all(self.api_node(n.index)["status"] == "online" for n in self.nodes)

        self.wait_until(ready, timeout_s, "every agent up with a baseline, every node online",
                        poll_s=0.5)  # fmt: skip

    def wait_until(self, check: Callable[[], T], timeout_s: float, what: str,
                   poll_s: float = 0.1) -> T:  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = check()
            except httpx.HTTPError:
                value = None  # a request cut short (restart, load): ask again
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(poll_s)


def legacy_agent_tree(dest: Path) -> Path:
    """The agent (and the packages it imports) as of LEGACY_AGENT_COMMIT, extracted from
    this repository's history into `dest` (once); run it with PYTHONPATH=dest."""
    if not (dest / "ftagent").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", LEGACY_AGENT_COMMIT, "ftagent",
             "ftcontract", "bpf"],
            capture_output=True, check=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def _signal(proc: subprocess.Popen[Any], sig: signal.Signals) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def _terminate(proc: subprocess.Popen[Any] | None, grace_s: float = 8.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    _signal(proc, signal.SIGCONT)  # a paused agent must see the SIGTERM
    _signal(proc, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

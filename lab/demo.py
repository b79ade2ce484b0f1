"""`make demo`: the whole loop on one machine, then everything it made is removed.

    python -m lab.demo [--flood-packets N] [--flood-pps P] [--keep-logs DIR]
                       [--dashboard-port P] [--hold SECONDS]

Builds the namespace lab (attacker <-veth-> victim, no default route), starts a real
`ftcontrol serve` and a real `ftagent run` inside the victim namespace (the API over the
victim's loopback), registers the node with `ftagent deploy`, waits for the baseline,
runs a bounded memcached-style flood from the attacker namespace (paced evenly, and
the rate the victim's interface saw stated afterwards), prints one line a
second (pps in, pps dropped, node status, as the control plane reports them), then the
incident as GET /api/v1/incidents/{uuid} returns it, and removes the processes, the XDP
program and the namespaces, also on Ctrl-C.

The dashboard: once the control plane is up the demo prints its URL (the node page, on
the root namespace's 127.0.0.1, forwarded by this process into the victim namespace:
see lab/port_forward.py) and a sign-in made for this run (an admin with a random
password, printed once, gone with the demo's database), so the flood can be watched live.
`--hold SECONDS` keeps everything up that long after the flood for a human to look.

`Stack` is the same orchestration for the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
import msgspec

from lab.netns import Lab
from lab.port_forward import PortForward

T = TypeVar("T")
CONTROL_PORT = 8080  # on the victim namespace's own loopback: always free there
DASHBOARD_PORT = 8088  # the demo's dashboard on the root namespace's 127.0.0.1
DEMO_EMAIL = "demo@fasttrace.example"


def agent_settings(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Agent config for the lab: short baseline, cool-down and intervals (seconds)."""
    return {
        "agent": {"state_dir": str(state_dir), "poll_interval_ms": 100, "log_format": "json"},
        "baseline": {"window_s": 60, "min_samples": 3, "recompute_interval_s": 1},
        "detection": {"cooldown_s": 2.0},
        "mitigation": {"mode": "on", "rule_ttl_s": 10.0, "holddown_s": 2.0},
        "capture": {"pre_attack_s": 2.0},
        "http": {"enabled": False},
        "control": {
            "heartbeat_interval_s": 1.0,
            "metrics_interval_s": 1.0,
            "config_interval_s": 5.0,
            "config_interval_attack_s": 1.0,
            "timeout_s": 2.0,
        },
    }


@dataclass
class Stack:
    """Lab + control plane + deployed agent. `start()`, use, `close()` (idempotent)."""

    workdir: Path
    node_name: str = "edge-demo"
    offline_after_s: float = 15.0
    control_env: dict[str, str] = field(default_factory=dict)
    control_args: list[str] = field(default_factory=list)  # more `ftcontrol serve` flags
    lab: Lab | None = None
    token: str = ""
    node_uuid: str = ""
    control: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    _logs: list[Any] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.workdir / "ftcontrol.db"

    @property
    def config(self) -> Path:
        return self.workdir / "ftagent.toml"

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{CONTROL_PORT}"

    def _lab(self) -> Lab:
        if self.lab is None:
            raise RuntimeError("the stack is not started")
        return self.lab

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, on_step: Callable[[str], None] = lambda _: None, agent: bool = True) -> None:
        """The lab, the control plane and (unless `agent` is False) the deployed agent."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        on_step("building the namespace lab")
        self.lab = Lab.create()
        on_step(f"lab: {self.lab.attacker_ns} <-> {self.lab.victim_ns} ({self.lab.victim_if})")
        self.token = self._workspace_token()
        on_step("starting the control plane in the victim namespace")
        self.start_control()
        if not agent:
            return
        on_step("registering the node with `ftagent deploy`")
        self._deploy()
        on_step("starting `ftagent run` on the victim interface")
        self.start_agent()

    def close(self) -> None:
        """Stop the agent (detaches XDP), the control plane, remove the namespaces."""
        self.stop_agent()
        self.stop_control()
        if self.lab is not None:
            self.lab.destroy()
            self.lab = None
        for fh in self._logs:
            with contextlib.suppress(OSError):
                fh.close()
        self._logs.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log(self, name: str) -> Any:
        fh = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(fh)
        return fh

    def _workspace_token(self) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "control.cli", "workspace", "create", "demo", "--plan", "pro",
             "--db", str(self.db)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def start_control(self) -> None:
        if self.control is not None and self.control.poll() is None:
            return
        env = {
            **os.environ,
            "FTCONTROL_DATA_DIR": str(self.workdir / "control-data"),
            "FTCONTROL_GAUGES_INTERVAL_S": "0.5",
            **self.control_env,
        }
        log = self._log("ftcontrol")
        self.control = self._lab().popen(
            self._lab().victim_ns,
            [sys.executable, "-m", "control.cli", "serve", "--port", str(CONTROL_PORT),
             "--db", str(self.db), "--offline-after", str(self.offline_after_s),
             *self.control_args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        self.wait_until(lambda: self._health_ok(), 20.0, "the control plane to answer")

    def stop_control(self) -> None:
        _terminate(self.control)
        self.control = None

    def _deploy(self) -> None:
        lab = self._lab()
        done = lab.run(
            lab.victim_ns,
            [sys.executable, "-m", "ftagent.cli", "deploy", "--server", self.server,
             "--token", self.token, "--name", self.node_name, "--ip", lab.victim_v4,
             "--interface", lab.victim_if, "--config", str(self.config)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"ftagent deploy failed: {done.stderr.strip()}")
        data = msgspec.toml.decode(self.config.read_bytes())
        self.node_uuid = str(data["control"]["node_uuid"])
        for section, values in agent_settings(self.workdir / "agent-state").items():
            data.setdefault(section, {}).update(values)
        text = msgspec.toml.encode(data)
        fd = os.open(self.config, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as fh:  # keeps the 0600 mode deploy gave it
            fh.write(text)

    def start_agent(self) -> None:
        log = self._log("ftagent")
        self.agent = self._lab().popen(
            self._lab().victim_ns,
            [sys.executable, "-m", "ftagent.cli", "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def stop_agent(self) -> None:
        _terminate(self.agent, grace_s=10.0)
        self.agent = None

    # ---- talking to the control plane (inside the victim namespace) ----------------------

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        lab = self._lab()
        with lab.inside(lab.victim_ns), httpx.Client(base_url=self.server, timeout=5.0) as c:
            return c.request(method, path, headers=headers, **kw)

    def get(self, path: str, **params: Any) -> Any:
        r = self.request("GET", path, params=params)
        r.raise_for_status()
        return r.json()

    def _health_ok(self) -> bool:
        if self.control is not None and self.control.poll() is not None:
            raise RuntimeError(f"ftcontrol exited ({self.control.returncode}); see ftcontrol.log")
        try:
            return self.request("GET", "/api/health").status_code == 200
        except httpx.HTTPError:
            return False

    def node(self) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/api/v1/nodes/{self.node_uuid}")["node"]
        return body

    def incidents(self, **params: Any) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.get("/api/v1/incidents", **params)["incidents"]
        return body

    def node_gauges(self) -> dict[str, float]:
        """This node's ftcontrol_node_* gauges from the control plane's /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.request("GET", "/metrics").text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.startswith("ftcontrol_node_") and s.labels.get("node") == self.node_name:
                    out[s.name] = s.value
        return out

    def wait_until(self, check: Callable[[], T], timeout_s: float, what: str) -> T:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.agent is not None and self.agent.poll() is not None:
                raise RuntimeError(f"ftagent exited ({self.agent.returncode}); see ftagent.log")
            try:
                value = check()
            except httpx.HTTPError:
                value = None  # a request cut short (restart, load): ask again
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.1)

    def wait_for_baseline(self, timeout_s: float = 60.0) -> dict[str, Any]:
        def with_baseline() -> dict[str, Any] | None:
            node = self.node()
            return node if node["baseline"] is not None else None

        found = self.wait_until(with_baseline, timeout_s, "the baseline")
        assert found is not None
        return found


def _terminate(proc: subprocess.Popen[bytes] | None, grace_s: float = 8.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def _interrupts_as_keyboard() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP all end the demo through the cleanup (SIGINT is set
    explicitly: a shell's background job inherits it ignored)."""

    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        # pyroute2 forks helpers for namespace work; a forked child inherits this handler
        # and must simply die when signalled, never run the demo's cleanup a second time.
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclass
class DemoDashboard:
    """The demo's dashboard: a port on the root namespace's loopback forwarded to the
    control plane in the victim namespace, and an admin made for this run."""

    forward: PortForward
    email: str
    password: str  # random, printed once; the demo's database goes at the end

    @property
    def base(self) -> str:
        return self.forward.url

    def page(self, node_uuid: str = "") -> str:
        return f"{self.base}/dash/nodes/{node_uuid}" if node_uuid else f"{self.base}/dash"

    def close(self) -> None:
        self.forward.close()


def open_dashboard(stack: Stack, port: int = DASHBOARD_PORT) -> DemoDashboard:
    """Creates the demo's dashboard user and forwards 127.0.0.1:`port` (0: any free port)
    of this namespace to the control plane (which must run with --insecure-cookies: the
    forwarded dashboard is plain HTTP)."""
    password = secrets.token_urlsafe(12)
    done = subprocess.run(
        [sys.executable, "-m", "control.cli", "user", "create", DEMO_EMAIL, "--workspace",
         "demo", "--role", "admin", "--db", str(stack.db)],
        input=password, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"ftcontrol user create failed: {done.stderr.strip()}")
    try:
        forward = PortForward(stack._lab().victim_ns, CONTROL_PORT, port).start()
    except OSError as exc:
        raise RuntimeError(
            f"127.0.0.1:{port} is not free for the dashboard ({exc.strerror}): "
            "pass --dashboard-port P (0 = any free port)"
        ) from exc
    return DemoDashboard(forward, DEMO_EMAIL, password)


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def run_demo(
    stack: Stack,
    flood_packets: int,
    flood_pps: int,
    dashboard_port: int = DASHBOARD_PORT,
    hold_s: float = 0.0,
) -> dict[str, Any]:
    stack.start(_say)
    dashboard = open_dashboard(stack, dashboard_port)
    try:
        _say(f"dashboard (the node page, live): {dashboard.page(stack.node_uuid)}")
        _say(f"sign in as {dashboard.email} with password {dashboard.password}")
        _say("(that user is made for this run only: it goes with the demo's database)")
        incident = _flood_and_report(stack, flood_packets, flood_pps)
        if hold_s > 0:
            _say(f"the dashboard stays up for {hold_s:.0f} s: {dashboard.page(stack.node_uuid)}")
            _say("(Ctrl-C ends the demo sooner)")
            time.sleep(hold_s)
        return incident
    finally:
        dashboard.close()


def _flood_and_report(stack: Stack, flood_packets: int, flood_pps: int) -> dict[str, Any]:
    from lab.trafgen import start_flood, stop_flood

    _say("waiting for the baseline (light benign traffic)")
    benign = start_flood(stack._lab(), "benign", packets=100_000, pps=200)
    try:
        node = stack.wait_for_baseline()
        _say(f"baseline ready: {json.dumps(node['baseline'])}")
        seconds = flood_packets / flood_pps
        _say(
            f"memcached-style flood: {flood_packets} packets at {flood_pps} pps "
            f"(~{seconds:.0f} s, UDP from port 11211, spoofed sources, paced by a tbf qdisc)"
        )
        flood = start_flood(stack._lab(), "memcached_amplification", packets=flood_packets,
                            pps=flood_pps)  # fmt: skip
        print(f"{'t':>4}  {'pps in':>10}  {'pps dropped':>11}  status", flush=True)
        started = time.monotonic()
        incident_uuid = ""
        try:
            while True:
                t = time.monotonic() - started
                gauges = stack.node_gauges()
                node = stack.node()
                print(
                    f"{t:4.0f}  {gauges.get('ftcontrol_node_pps', 0.0):10.0f}  "
                    f"{gauges.get('ftcontrol_node_dropped_pps', 0.0):11.0f}  {node['status']}",
                    flush=True,
                )
                if not incident_uuid:
                    found = stack.incidents(node=stack.node_uuid, status="active")
                    incident_uuid = found[0]["uuid"] if found else ""
                done = flood.poll() is not None
                if done and incident_uuid and node["status"] != "attack":
                    break
                if t > seconds + 60:
                    raise TimeoutError("the incident did not resolve within a minute of the flood")
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started - t)))
        finally:
            achieved = stop_flood(flood)
        if achieved is not None:
            _say(
                f"the flood as the victim's interface saw it: {achieved.describe()}; "
                f"requested {flood_pps:,} pps (benign background included)"
            )
    finally:
        stop_flood(benign)
    incident: dict[str, Any] = stack.wait_until(
        lambda: stack.get(f"/api/v1/incidents/{incident_uuid}")["incident"], 10.0, "the incident"
    )
    pcap = stack.request("GET", f"/api/v1/incidents/{incident_uuid}/pcap")
    _say("the incident, as GET /api/v1/incidents/{uuid} returns it:")
    print(json.dumps(incident, indent=2), flush=True)
    if pcap.status_code == 200:
        _say(f"its pcap: {len(pcap.content)} bytes, sha256 {pcap.headers['x-content-sha256']}")
    else:
        _say(f"its pcap is not there yet ({pcap.status_code})")
    return incident


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--flood-packets", type=int, default=200_000)
    p.add_argument("--flood-pps", type=int, default=25_000)
    p.add_argument("--keep-logs", metavar="DIR", help="copy the processes' logs here at the end")
    p.add_argument(
        "--dashboard-port", type=int, default=DASHBOARD_PORT, metavar="P",
        help=f"the dashboard on 127.0.0.1:P (default {DASHBOARD_PORT}; 0 = any free port)",
    )  # fmt: skip
    p.add_argument(
        "--hold", type=float, default=0.0, metavar="SECONDS",
        help="keep the stack and the dashboard up this long after the flood (default 0)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.hold < 0 or not 0 <= args.dashboard_port <= 65535:
        p.error("--hold must be >= 0 and --dashboard-port 0..65535")
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, XDP)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="ftdemo-"))
    stack = Stack(workdir, control_args=["--insecure-cookies"])  # the dashboard is plain HTTP
    code = 0
    try:
        with _interrupts_as_keyboard():
            run_demo(stack, args.flood_packets, args.flood_pps, args.dashboard_port, args.hold)
    except KeyboardInterrupt:
        _say("interrupted")
        code = 130
    except Exception as exc:
        _say(f"failed: {exc} (logs in {workdir})")
        code = 1
    finally:
        with _interrupts_as_keyboard(), contextlib.suppress(KeyboardInterrupt):
            _say("cleaning up: agent (XDP detach), control plane, namespaces")
            stack.close()
            if args.keep_logs:
                shutil.copytree(workdir, args.keep_logs, dirs_exist_ok=True)
            if code != 1:
                shutil.rmtree(workdir, ignore_errors=True)
    _say("done" if code == 0 else f"exit {code}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())

"""The operator's install, for real, into a temporary prefix (tests/e2e/install_harness.py
says what is stubbed: only apt-get and systemctl).

1. packaging/install.sh from the checkout: the runtime lands in the prefix, the units pass
   `systemd-analyze verify` with the installed paths, the installed ftagent (run as its
   unit's ExecStart says) detects a flood in the namespace lab, the installed ftcontrol
   serves the API, install.sh and its wheel; a second run upgrades in place and restarts
   only what was running.
2. The one-liner: the installed ftcontrol in the victim namespace serves install.sh; piped
   into sh with the deploy token in the environment, it installs the agent into another
   prefix, registers the node and the agent heartbeats; a re-run changes nothing; a wrong
   token fails with the API's 401 reason and installs nothing.
3. Uninstall keeps configuration and state unless --purge.

One module over 400 lines because the three share expensive fixtures (a built wheel and a
real install into a prefix, minutes each): split, each file would build its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.capability import require, require_root
from tests.e2e.install_harness import TEST_TOOLS, Stubs, exec_start, make_stubs, run_installer

# Real pip installs (two per run of the installer) and BPF compiles: more than the suite's
# default 300 s per test under load.
pytestmark = [pytest.mark.lab, pytest.mark.kernel, pytest.mark.timeout(1200)]

CONTROL_PORT = 18480


@dataclass
class Installed:
    prefix: Path
    stubs: Stubs
    first: subprocess.CompletedProcess[str]

    def path(self, relative: str) -> Path:
        return self.prefix / relative.lstrip("/")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    base = tmp_path_factory.mktemp("install")
    stubs = make_stubs(base / "stubs")
    prefix = base / "root"
    result = run_installer(stubs, "--prefix", str(prefix))
    assert result.returncode == 0, result.stdout + result.stderr
    return Installed(prefix, stubs, result)


def wait_until(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen[Any]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


# ---- 1. the runtime install -------------------------------------------------------------


def test_the_runtime_lands_in_the_prefix(installed: Installed) -> None:
    p = installed.path
    venv = p("/opt/fasttrace")
    for program in ("ftagent", "ftcontrol"):
        link = p(f"/usr/local/bin/{program}")
        assert link.is_symlink() and link.resolve() == (venv / "bin" / program).resolve()
        shown = subprocess.run([str(link), "--version"], capture_output=True, text=True)
        assert shown.stdout.strip() == f"{program} 0.1.0", shown
    # The venv sees Debian's bcc (the agent needs it; PyPI's "bcc" is another project).
    bcc = subprocess.run([str(venv / "bin" / "python"), "-c", "import bcc"], capture_output=True)
    assert bcc.returncode == 0, bcc.stderr
    assert p("/etc/ftagent").stat().st_mode & 0o777 == 0o700
    assert p("/var/lib/ftagent").is_dir() and p("/var/lib/ftcontrol").is_dir()
    (wheel,) = (venv / "share" / "fasttrace" / "wheels").glob("*.whl")
    assert wheel.name == "fasttrace-0.1.0-py3-none-any.whl"
    for unit in ("ftagent", "ftcontrol"):
        argv = exec_start(p(f"/etc/systemd/system/{unit}.service"))
        assert argv[0] == str(p(f"/usr/local/bin/{unit}"))
    assert exec_start(p("/etc/systemd/system/ftagent.service"))[-1] == str(
        p("/etc/ftagent/ftagent.toml")
    )
    # No test tools, and nothing started: units installed, systemd told, nothing restarted.
    calls = installed.stubs.calls()
    assert not any(tool in call for call in calls for tool in TEST_TOOLS), calls
    assert "systemctl daemon-reload" in calls
    assert not any(c.startswith(("systemctl restart", "systemctl enable")) for c in calls)


def test_the_units_pass_systemd_analyze_verify(installed: Installed, tmp_path: Path) -> None:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze (systemd)")
    units = [
        str(installed.path(f"/etc/systemd/system/{u}.service")) for u in ("ftagent", "ftcontrol")
    ]
    ok = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # ...and verify does check the paths: the same unit pointing at a missing binary fails.
    broken = tmp_path / "ftagent.service"
    broken.write_text(Path(units[0]).read_text().replace("/usr/local/bin/", "/nonexistent/"))
    bad = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True)
    assert bad.returncode != 0 and "/nonexistent/ftagent" in bad.stderr


def test_the_installed_agent_detects_a_flood_in_the_lab(installed: Installed) -> None:
    from lab.netns import Lab
    from lab.trafgen import start_flood, stop_flood

    config = installed.path("/etc/ftagent/ftagent.toml")
    state = installed.path("/var/lib/ftagent")
    argv = exec_start(installed.path("/etc/systemd/system/ftagent.service"))
    with Lab.create() as lab:
        config.write_text(
            f'[agent]\ninterface = "{lab.victim_if}"\nstate_dir = "{state}"\n'
            'log_format = "json"\n[baseline]\nwindow_s = 60\nmin_samples = 2\n'
            "recompute_interval_s = 1\n[detection]\ncooldown_s = 1.0\n"
            "[mitigation]\nrule_ttl_s = 3.0\nholddown_s = 1.0\n[http]\nport = 9477\n"
        )
        log_path = state / "agent.log"
        with open(log_path, "w") as log_file:
            proc = lab.popen(lab.victim_ns, argv, stdout=log_file, stderr=log_file)

        def health() -> dict[str, Any] | None:
            with lab.inside(lab.victim_ns):
                try:
                    got: dict[str, Any] = httpx.get(
                        "http://127.0.0.1:9477/health", timeout=5
                    ).json()
                    return got
                except httpx.HTTPError:
                    return None

        try:
            wait_until(
                lambda: proc.poll() is None and (health() or {}).get("baseline_ready") is True,
                120,
                "the installed agent's ready baseline",
            )
            with lab.inside(lab.victim_ns):
                metrics = httpx.get("http://127.0.0.1:9477/metrics", timeout=5).text
            mode = (health() or {})["xdp_mode"]
            attached = f'ftagent_xdp_attached{{interface="{lab.victim_if}",mode="{mode}"}} 1.0'
            assert attached in metrics, metrics[-1500:]
            flood = start_flood(lab, "memcached_amplification", packets=90_000, pps=30_000)
            try:
                wait_until(
                    lambda: (
                        ((health() or {}).get("incident") or {}).get("family")
                        == "memcached_amplification"
                    ),
                    15,
                    "the installed agent to detect the flood",
                )
            finally:
                stop_flood(flood)
        finally:
            rc = stop(proc)
        assert rc == 0, log_path.read_text()[-2000:]
        assert '"event":"incident_opened"' in log_path.read_text()


@contextlib.contextmanager
def serving_control(installed: Installed, ns: str | None, lab: Any, db: Path) -> Iterator[str]:
    """The installed ftcontrol, run as its unit's ExecStart with our port and database."""
    argv = exec_start(installed.path("/etc/systemd/system/ftcontrol.service"))
    argv = [a for a in argv]
    argv[argv.index("--port") + 1] = str(CONTROL_PORT)
    argv[argv.index("--db") + 1] = str(db)
    log = open(db.with_suffix(".log"), "w")  # noqa: SIM115 (closed below)
    if ns is None:
        proc = subprocess.Popen(argv, stdout=log, stderr=log)
    else:
        proc = lab.popen(ns, argv, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{CONTROL_PORT}"

    def up() -> bool:
        try:
            return httpx.get(base + "/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if ns is None:
            wait_until(lambda: proc.poll() is None and up(), 60, "the installed ftcontrol")
        else:
            with lab.inside(ns):
                wait_until(lambda: proc.poll() is None and up(), 60, "the installed ftcontrol")
        yield base
    finally:
        stop(proc)
        log.close()


def create_workspace(installed: Installed, db: Path, name: str) -> str:
    made = subprocess.run(
        [
            str(installed.path("/usr/local/bin/ftcontrol")),
            "workspace",
            "create",
            name,
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def test_the_installed_control_plane_serves_the_api_and_the_installer(
    installed: Installed, tmp_path: Path
) -> None:
    db = tmp_path / "ftcontrol.db"
    token = create_workspace(installed, db, "acme")
    with serving_control(installed, None, None, db) as base:
        workspace = httpx.get(
            base + "/api/v1/workspace", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert workspace.status_code == 200 and workspace.json()["workspace"]["name"] == "acme"
        script = httpx.get(base + "/install.sh", timeout=5)
        (wheel,) = installed.path("/opt/fasttrace/share/fasttrace/wheels").glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert script.status_code == 200
        assert f"FT_SERVER={base}\n" in script.text
        assert f"FT_WHEEL_URL={base}/install/{wheel.name}\n" in script.text
        assert f"FT_WHEEL_SHA256={digest}\n" in script.text
        served = httpx.get(f"{base}/install/{wheel.name}", timeout=10)
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == digest


def test_a_second_run_upgrades_in_place_and_restarts_only_what_ran(
    installed: Installed, tmp_path: Path
) -> None:
    stubs = make_stubs(tmp_path / "stubs", active=["ftagent"])
    venv_python = installed.path("/opt/fasttrace/bin/python")
    before = venv_python.resolve().stat().st_ino, installed.path("/opt/fasttrace").stat().st_ino
    again = run_installer(stubs, "--prefix", str(installed.prefix))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating" not in again.stdout  # the same venv, upgraded
    assert installed.path("/opt/fasttrace").stat().st_ino == before[1]
    calls = stubs.calls()
    assert "systemctl restart ftagent" in calls
    assert not any(c.startswith("systemctl restart ftcontrol") for c in calls)
    assert not any(c.startswith("systemctl enable") for c in calls)


# ---- 2. the one-liner -------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheelhouse(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's dependencies as files: the victim namespace has no route to an index
    (as a node behind a mirror would, pip takes them from PIP_FIND_LINKS)."""
    house = tmp_path_factory.mktemp("wheelhouse")
    (wheel,) = installed.path("/opt/fasttrace/share/fasttrace/wheels").glob("*.whl")
    pip = [str(installed.path("/opt/fasttrace/bin/python")), "-m", "pip"]
    subprocess.run([*pip, "download", "-q", "-d", str(house), str(wheel)], check=True, timeout=600)
    return house


class ArgvWatch:
    """Reads every process's argv while it runs: the token must never be in one."""

    INSTALLER_ARGV = b"sh\0-s\0--\0--prefix\0"  # the piped install.sh itself

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.seen: list[str] = []
        self.saw_installer = False  # proof the watch ran while the script did
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    argv = (entry / "cmdline").read_bytes()
                    if self.secret in argv:
                        self.seen.append(argv.replace(b"\0", b" ").decode(errors="replace"))
                    if self.INSTALLER_ARGV in argv:
                        self.saw_installer = True
            time.sleep(0.01)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_the_one_liner_installs_registers_and_is_idempotent(
    installed: Installed, wheelhouse: Path, tmp_path: Path
) -> None:
    require(shutil.which("curl") is not None, "curl")
    from lab.netns import Lab

    db = tmp_path / "control.db"
    token = create_workspace(installed, db, "fleet")
    node_prefix = tmp_path / "node"
    stubs = make_stubs(tmp_path / "stubs")
    with Lab.create() as lab, serving_control(installed, lab.victim_ns, lab, db) as base:

        def one_liner(
            secret: str, *args: str, prefix: Path = node_prefix
        ) -> subprocess.CompletedProcess[str]:
            env = stubs.env(
                FTAGENT_DEPLOY_TOKEN=secret,
                PIP_NO_INDEX="1",
                PIP_FIND_LINKS=str(wheelhouse),
            )
            pipeline = f'curl -fsSL {base}/install.sh | sh -s -- --prefix "$1" ' + " ".join(args)
            with ArgvWatch(secret) as watch:
                done = lab.run(
                    lab.victim_ns,
                    ["sh", "-c", pipeline, "one-liner", str(prefix)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
            assert watch.seen == [], watch.seen
            assert secret not in done.stdout + done.stderr
            watched.append(watch.saw_installer)
            return done

        def nodes() -> list[dict[str, Any]]:
            with lab.inside(lab.victim_ns):
                got = httpx.get(
                    base + "/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}, timeout=5
                )
            assert got.status_code == 200, got.text
            listed: list[dict[str, Any]] = got.json()["nodes"]
            return listed

        watched: list[bool] = []
        node_args = ("--name", "edge-1", "--ip", lab.victim_v4, "--interface", lab.victim_if)
        first = one_liner(token, *node_args)
        assert first.returncode == 0, first.stdout + first.stderr
        (node,) = nodes()
        assert (node["name"], node["ip"]) == ("edge-1", lab.victim_v4)
        config = node_prefix / "etc" / "ftagent" / "ftagent.toml"
        assert config.stat().st_mode & 0o777 == 0o600
        assert node["uuid"] in config.read_text()
        assert "systemctl enable --now ftagent" in stubs.calls()

        # What systemd would start: the unit's ExecStart, in the victim namespace.
        argv = exec_start(node_prefix / "etc" / "systemd" / "system" / "ftagent.service")
        log_path = tmp_path / "agent.log"
        with open(log_path, "w") as log_file:
            agent = lab.popen(lab.victim_ns, argv, stdout=log_file, stderr=log_file)
        try:

            def heartbeat() -> dict[str, Any]:
                with lab.inside(lab.victim_ns):
                    got = httpx.get(
                        f"{base}/api/v1/nodes/{node['uuid']}/agent",
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=5,
                    )
                state: dict[str, Any] = got.json()["agent"]
                return state

            wait_until(lambda: heartbeat()["last_heartbeat"] is not None, 120, "a heartbeat")
            assert heartbeat()["version"] == "0.1.0"
            assert heartbeat()["outdated"] is False  # the same release as the control plane
            assert heartbeat()["interface"] == lab.victim_if
        finally:
            assert stop(agent) == 0, log_path.read_text()[-2000:]

        # Again on the registered node: same node, same key, nothing new.
        kept = config.read_bytes()
        second = one_liner(token, *node_args)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"already registered as node {node['uuid']}" in second.stdout
        assert config.read_bytes() == kept
        assert [n["uuid"] for n in nodes()] == [node["uuid"]]

        # A wrong token: the API's own 401 reason, and nothing installed in a fresh prefix.
        wrong = "0" * 64
        with lab.inside(lab.victim_ns):
            refused = httpx.get(
                base + "/api/v1/workspace", headers={"Authorization": f"Bearer {wrong}"}, timeout=5
            )
        assert refused.status_code == 401
        reason = refused.json()["error"]
        fresh = tmp_path / "fresh"
        failed = one_liner(wrong, *node_args, prefix=fresh)
        assert failed.returncode != 0
        assert f"refused the deploy token (401): {reason}" in failed.stderr, failed.stderr
        assert not fresh.exists() or list(fresh.rglob("*")) == [], list(fresh.rglob("*"))
        assert [n["uuid"] for n in nodes()] == [node["uuid"]]

        # --re-register: a new node and key on purpose; the old node stays for the operator,
        # so the same name is refused (unique per workspace) and the old config kept...
        clash = one_liner(token, *node_args, "--re-register")
        assert clash.returncode != 0
        assert "(409): a node named 'edge-1' already exists" in clash.stderr, clash.stderr
        assert config.read_bytes() == kept
        # ...and under a new name the node is registered anew.
        renamed = ("--name", "edge-1b", *node_args[2:])
        again = one_liner(token, *renamed, "--re-register")
        assert again.returncode == 0, again.stdout + again.stderr
        uuids = {n["uuid"] for n in nodes()}
        assert len(uuids) == 2 and node["uuid"] in uuids
        (new_uuid,) = uuids - {node["uuid"]}
        assert new_uuid in config.read_text() and node["uuid"] not in config.read_text()
        assert config.stat().st_mode & 0o777 == 0o600
        # The installing runs lasted long enough for the watch to see the script run.
        assert [watched[i] for i in (0, 1, 3, 4)] == [True] * 4, watched


# ---- 3. uninstall (last: it removes the module's install) --------------------------------


def test_uninstall_keeps_state_unless_purged(installed: Installed, tmp_path: Path) -> None:
    stubs = make_stubs(tmp_path / "stubs")
    kept = installed.path("/etc/ftagent/ftagent.toml")
    kept.write_text('[agent]\ninterface = "eth0"\n')  # the operator's configuration
    removed = run_installer(stubs, "--uninstall", "--prefix", str(installed.prefix))
    assert removed.returncode == 0, removed.stdout + removed.stderr
    for gone in (
        "/opt/fasttrace",
        "/usr/local/bin/ftagent",
        "/usr/local/bin/ftcontrol",
        "/etc/systemd/system/ftagent.service",
        "/etc/systemd/system/ftcontrol.service",
    ):
        assert not os.path.lexists(installed.path(gone)), gone
    assert kept.exists() and installed.path("/var/lib/ftcontrol").is_dir()
    assert "systemctl disable --now ftagent" in stubs.calls()
    purged = run_installer(stubs, "--uninstall", "--purge", "--prefix", str(installed.prefix))
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not installed.path("/etc/ftagent").exists()
    assert not installed.path("/var/lib/ftagent").exists()
    assert not installed.path("/var/lib/ftcontrol").exists()

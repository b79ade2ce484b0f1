"""`ftcontrol serve --bgp-config PATH` as an operator runs it: a real server process (in the
lab's speaker namespace) whose ExaBGP peers with BIRD; an RTBH escalated through its REST
API reaches BIRD, goes away with the stopped server (the BGP fail-safe) and comes back
with the restarted one. A bad file stops `serve` before it listens, naming the key."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.bgp import prefixes
from control.cli import main as cli_main
from control.core.db import open_db
from control.workspace.service import create_workspace
from lab.bird import ROUTER_AS, ROUTER_V4, SPEAKER_AS, SPEAKER_V4, UNICAST4, BgpLab
from lab.netns import enter_netns, nsenter_argv
from tests.bgp.daemons import table

pytestmark = [pytest.mark.lab, pytest.mark.bgp]

PORT = 18080
BASE = f"http://127.0.0.1:{PORT}"
CONFIG = f"""\
router_id = "{SPEAKER_V4}"
local_as = {SPEAKER_AS}
[listen]
address = "{SPEAKER_V4}"
[[peers]]
address = "{ROUTER_V4}"
peer_as = {ROUTER_AS}
"""


async def _workspace(db: Path) -> str:
    """Workspace "acme" with 203.0.113.0/24 declared (the CLI's own functions; the CLI
    itself is tested in tests/api/bgp); returns its deploy token."""
    conn = await open_db(db)
    try:
        _, token = await create_workspace(conn, "acme", "pro")
        await prefixes.add_prefix(conn, "acme", "203.0.113.0/24")
        return token
    finally:
        await conn.close()


def wait_until(check: Any, what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


@contextlib.contextmanager
def serving(lab: BgpLab, db: Path, conf: Path, workdir: Path, log: Path) -> Iterator[None]:
    argv = [sys.executable, "-m", "control.cli", "serve", "--port", str(PORT), "--db", str(db),
            "--bgp-config", str(conf), "--bgp-workdir", str(workdir)]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            nsenter_argv(lab.speaker_ns, argv), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        proc.terminate()
        # uvicorn ends by raising the signal again once its shutdown is done
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in log.read_text(errors="replace")


def call(method: str, path: str, lab: BgpLab, **kw: Any) -> httpx.Response | None:
    """A request to the server's loopback in the speaker namespace; None: not up (yet)."""
    with enter_netns(lab.speaker_ns), httpx.Client(base_url=BASE, timeout=10) as client:
        try:
            return client.request(method, path, **kw)
        except httpx.TransportError:
            return None


def test_serve_with_bgp_config_announces_and_restart_reannounces(
    bgp_lab: BgpLab, tmp_path: Path, bgp_workdir: Path
) -> None:
    db, conf, log = tmp_path / "ftcontrol.db", tmp_path / "bgp.toml", tmp_path / "serve.log"
    conf.write_text(CONFIG)
    rest = {"Authorization": f"Bearer {asyncio.run(_workspace(db))}"}

    def peer_up() -> bool:
        r = call("GET", "/api/v1/bgp/peers", bgp_lab, headers=rest)
        return r is not None and r.json()["peers"][0]["state"] == "up"

    with serving(bgp_lab, db, conf, bgp_workdir, log):
        wait_until(peer_up, "the speaker's peer up")
        r = call("POST", "/api/deploy", bgp_lab, headers=rest,
                 json={"name": "edge", "ip": "203.0.113.7"})  # fmt: skip
        assert r is not None and r.status_code == 200, r
        node = {"Authorization": f"Bearer {r.json()['api_key']}",
                "X-Node-UUID": r.json()["node_uuid"]}  # fmt: skip
        incident = str(uuid.uuid4())
        opened = {"uuid": incident, "started_at": time.time(),
                  "figures": {"seq": 1, "family": "udp_flood", "severity": "high"}}  # fmt: skip
        r = call("POST", "/api/v1/agent/incidents", bgp_lab, headers=node, json=opened)
        assert r is not None and r.status_code == 201, r.text if r else r
        r = call("POST", f"/api/v1/incidents/{incident}/escalate", bgp_lab, headers=rest,
                 json={"action": "rtbh"})  # fmt: skip
        assert r is not None and r.status_code == 200, r.text if r else r
        [route] = wait_until(lambda: table(bgp_lab, UNICAST4), "the RTBH in BIRD")
        assert (route.net, route.attributes["BGP.community"]) == ("203.0.113.7/32", "(65535,666)")
    # stopped: the session is gone and with it the route
    wait_until(lambda: table(bgp_lab, UNICAST4) == [], "the route gone with ftcontrol")
    with serving(bgp_lab, db, conf, bgp_workdir, log):
        [route] = wait_until(lambda: table(bgp_lab, UNICAST4), "the RTBH re-announced")
        assert route.net == "203.0.113.7/32"
        r = call("GET", "/api/v1/bgp/announcements", bgp_lab, headers=rest)
        assert r is not None
        [listed] = r.json()["announcements"]
        assert (listed["kind"], listed["in_force"], listed["incident_uuid"]) == (
            "rtbh", True, incident)  # fmt: skip


def test_serve_refuses_a_bad_bgp_config_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "bgp.toml"
    conf.write_text(CONFIG.replace(f'router_id = "{SPEAKER_V4}"', 'router_id = "nope"'))
    assert cli_main(["serve", "--db", str(tmp_path / "x.db"), "--bgp-config", str(conf)]) == 2
    assert "router_id: 'nope' is not an IP address" in capsys.readouterr().err
    missing = str(tmp_path / "none.toml")
    assert cli_main(["serve", "--db", str(tmp_path / "x.db"), "--bgp-config", missing]) == 2
    assert f"{missing}: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()  # stopped before anything was opened

"""A quiet node writes nothing per second: `ftagent run` on an idle interface, alone and
with a control plane that never answers, logs its start (and the outage, once) and then
nothing while it keeps polling, posting and retrying."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

CONFIG = """
[agent]
interface = "{iface}"
state_dir = "{state}"
log_format = "json"
[http]
port = 9477
"""
# A control plane that never answers: nothing listens on this loopback port.
UNREACHABLE = """
[control]
server = "http://127.0.0.1:9"
api_key = "{key}"
node_uuid = "0b7c6a52-3d1e-4f7e-9a61-2c3d4e5f6a7b"
heartbeat_interval_s = 0.5
"""
QUIET_S = 6.0


@pytest.mark.parametrize("control", [False, True], ids=["stand-alone", "control-plane-down"])
def test_an_idle_agent_logs_nothing_per_second(tmp_path: Path, control: bool) -> None:
    require_root()
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    from ftagent.bpf import pins
    from lab.netns import Lab

    with Lab.create() as lab:
        cfg = tmp_path / "ftagent.toml"
        text = CONFIG.format(iface=lab.victim_if, state=tmp_path / "state")
        if control:
            text += UNREACHABLE.format(key="ab" * 32)
        cfg.write_text(text)
        log_path = tmp_path / "agent.log"
        with open(log_path, "w") as log_file:
            proc = lab.popen(
                lab.victim_ns,
                [sys.executable, "-m", "ftagent.cli", "run", "--config", str(cfg)],
                stdout=log_file,
                stderr=log_file,
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()[-2000:]
                try:
                    with lab.inside(lab.victim_ns):
                        if httpx.get("http://127.0.0.1:9477/health", timeout=1).is_success:
                            break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the agent did not come up"
                time.sleep(0.1)
            time.sleep(2.0)  # the start's lines (and, with a control plane, the outage's)
            settled = log_path.read_text().splitlines()
            time.sleep(QUIET_S)
            later = log_path.read_text().splitlines()[len(settled):]
            assert later == [], later  # ten polls a second, posts and retries: no line
            messages = [json.loads(line)["msg"] for line in settled]
            assert any("agent started" in m for m in messages), messages
            if control:  # the outage is said, once
                assert sum("control plane unreachable" in m for m in messages) == 1, messages
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            pins.remove(pins.pin_dir(lab.victim_if))  # kept by `run` for a restart

"""`ftagent run` as a real process in the lab's victim namespace: JSON logs, local
/health and /metrics, `ftagent status`, a flood handled end to end, clean stop."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

CONFIG = """
[agent]
interface = "{iface}"
state_dir = "{state}"
log_format = "json"
[baseline]
window_s = 60
min_samples = 2
recompute_interval_s = 1
[detection]
cooldown_s = 1.0
[mitigation]
rule_ttl_s = 3.0
holddown_s = 1.0
[http]
port = 9477
"""


def log_events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        out.append(json.loads(line))  # every line is one JSON object
    return out


def wait_until(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_ftagent_run_status_metrics_and_clean_stop(tmp_path: Path) -> None:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    from ftagent.bpf import pins
    from ftagent.bpf.xdp import ifindex_of, xdp_prog_id
    from lab.netns import Lab
    from lab.trafgen import start_flood, stop_flood

    with Lab.create() as lab:
        cfg = tmp_path / "ftagent.toml"
        cfg.write_text(CONFIG.format(iface=lab.victim_if, state=tmp_path / "state"))
        log_path = tmp_path / "agent.log"
        ftagent = [sys.executable, "-m", "ftagent.cli"]
        with open(log_path, "w") as log_file:
            proc = lab.popen(
                lab.victim_ns,
                [*ftagent, "run", "--config", str(cfg)],
                stdout=log_file,
                stderr=log_file,
            )
        try:

            def status() -> subprocess.CompletedProcess[str]:
                return lab.run(
                    lab.victim_ns,
                    [*ftagent, "status", "--config", str(cfg)],
                    capture_output=True,
                    text=True,
                    timeout=20,
                )

            wait_until(
                lambda: proc.poll() is None and status().returncode == 0, 90, "the agent's /health"
            )
            wait_until(lambda: "baseline:     ready" in status().stdout, 20, "a ready baseline")
            with lab.inside(lab.victim_ns):
                health = httpx.get("http://127.0.0.1:9477/health", timeout=5).json()
                metrics = httpx.get("http://127.0.0.1:9477/metrics", timeout=5).text
            assert health["status"] == "ok" and health["interface"] == lab.victim_if
            assert health["xdp_mode"] in ("native", "generic")
            assert health["baseline_ready"] is True and health["attack_active"] is False
            # this kernel has the socket helpers: rules spare what the node's sockets want
            assert health["socket_guard"] is True and health["socket_guard_reason"] == "on"
            assert health["tcp_syncookies"] in (1, 2) and health["warnings"] == []
            assert health["udp_egress_learning"] is True and health["udp_egress_error"] is None
            for name in (
                'ftagent_packets_total{proto="udp"}',
                'ftagent_bytes_total{proto="total"}',
                'ftagent_dropped_packets_total{reason="drop_signature"}',
                'ftagent_baseline_pps{quantile="0.99"}',
                "ftagent_attack_active 0.0",
                "ftagent_rules_active 0.0",
            ):
                assert name in metrics, name

            flood = start_flood(lab, "memcached_amplification", packets=90_000, pps=30_000)
            try:
                wait_until(
                    lambda: "memcached_amplification" in status().stdout,
                    10,
                    "status to show the incident",
                )
                shown = status().stdout
                assert "signature proto=17 sport=11211" in shown
                with lab.inside(lab.victim_ns):
                    during = httpx.get("http://127.0.0.1:9477/metrics", timeout=5).text
                assert "ftagent_attack_active 1.0" in during
                assert "ftagent_rules_active 1.0" in during
                # each rule's own counters: dropped and spared, packets and bytes
                rule = 'rule="signature proto=17 sport=11211 spare=connected"'
                for name in ("dropped_packets", "dropped_bytes", "spared_packets", "spared_bytes"):
                    assert f"ftagent_rule_{name}_total{{{rule}}}" in during, name
            finally:
                stop_flood(flood)
            wait_until(
                lambda: '"event":"incident_resolved"' in log_path.read_text(),
                15,
                "the resolution log line",
            )
            wait_until(
                lambda: '"action":"removed"' in log_path.read_text(),
                10,
                "the rule removal log line",
            )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
        assert rc == 0, log_path.read_text()[-2000:]
        with lab.inside(lab.victim_ns):
            assert xdp_prog_id(ifindex_of(lab.victim_if)) == 0, "XDP left attached after stop"
        events = log_events(log_path)
        kinds = [e.get("event") for e in events]
        assert kinds.count("incident_opened") == 1
        assert kinds.count("incident_resolved") == 1
        rule_lines = [e for e in events if e.get("event") == "rule_changed"]
        assert [e["action"] for e in rule_lines] == ["added", "removed"]
        opened = next(e for e in events if e.get("event") == "incident_opened")
        assert opened["family"] == "memcached_amplification"
        assert (tmp_path / "state" / "baseline.json").exists()
        assert list((tmp_path / "state" / "pcap").glob("*.pcap"))

        # A restart restores the persisted baseline: ready at once, not learning again.
        log2 = tmp_path / "agent2.log"
        with open(log2, "w") as log_file:
            proc = lab.popen(
                lab.victim_ns,
                [*ftagent, "run", "--config", str(cfg)],
                stdout=log_file,
                stderr=log_file,
            )
        try:
            wait_until(lambda: "agent started" in log2.read_text(), 90, "the second start")
            assert "baseline restored" in log2.read_text()
            assert "baseline ready" in log2.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
            # `ftagent run` keeps its pins for the next start: this lab's go with it
            pins.remove(pins.pin_dir(lab.victim_if))
        assert rc == 0

"""ControlSink: the agent loop's dicts become Agent API messages on a real loopback server;
control-plane settings come back as Overrides, commands are acked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftagent.config import Config, decode
from ftagent.events import Overrides
from ftagent.report.sink import ControlSink
from tests.unit.report.loopback import LoopbackControlPlane

NODE = "0b7c6a52-3d1e-4f7e-9a61-2c3d4e5f6a7b"
INC = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"


def config(plane: LoopbackControlPlane, tmp_path: Path) -> Config:
    return decode(
        f"""
[agent]
interface = "veth-t"
state_dir = "{tmp_path}"
[control]
server = "{plane.url}"
api_key = "{"ab" * 32}"
node_uuid = "{NODE}"
heartbeat_interval_s = 0.2
metrics_interval_s = 0.2
config_interval_s = 0.3
[mitigation]
rule_ttl_s = 300
management_prefixes = ["192.0.2.0/24"]
"""
    )


@pytest.fixture
def sink(plane: LoopbackControlPlane, tmp_path: Path) -> Iterator[ControlSink]:
    s = ControlSink(config(plane, tmp_path), datapath=None)
    s.start()
    yield s
    s.close()


METRICS = {
    "ts": 1_700_000_000.4,
    "pps": 1000.0,
    "bps": 8e6,
    "tcp_pps": 600.0,
    "udp_pps": 300.0,
    "icmp_pps": 50.0,
    "fragment_pps": 10.0,
    "syn_pps": 20.0,
    "ack_pps": 500.0,
    "rst_pps": 1.0,
    "dropped_pps": 5.0,
    "dropped_bps": 40.0,
    "baseline_ready": True,
    "attack_active": True,
    "rules_active": 1,
    "baseline": {"pps": {"avg": 900.0, "p95": 1100.0, "p99": 1200.0},
                 "bps": {"avg": 1.0, "p95": 2.0, "p99": 3.0}},
}  # fmt: skip

INCIDENT = {
    "uuid": INC,
    "status": "active",
    "family": "memcached_amplification",
    "subtype": "reflection",
    "severity": "high",
    "started_at": "2023-11-14T22:13:20.000Z",
    "started_at_unix": 1_700_000_000.0,
    "peak_pps": 50000,
    "peak_bps": 5e8,
    "mean_pps": 40000,
    "baseline_pps": 1200.0,
    "threshold_pps": 5000.0,
    "evidence": {"udp_share": 0.99},
    "top_sources": [{"address": "8.8.8.8", "pps": 30000.0, "bps": 3e8, "packets": 9, "bytes": 9}],
    "source_count": 57,
    "protocol_breakdown": {"tcp": 0.01, "udp": 0.99, "icmp": 0.0, "other": 0.0},
    "rules": ["signature proto=17 sport=11211", "src 8.8.8.8/32 rate<=100pps"],
    "mitigation": [
        {"at": "2023-11-14T22:13:20.250Z", "action": "rules_added", "reason": "x", "rules": []}
    ],
}


def test_metrics_and_heartbeat_carry_the_loops_figures(plane, sink) -> None:
    sink.metrics_second(METRICS)
    assert plane.wait_for(lambda: bool(plane.of("metrics")))
    (point,) = plane.of("metrics")[0].json()["points"]
    assert point == {
        "ts": 1_700_000_000.4,
        "pps": 1000.0,
        "bps": 8e6,
        "dropped_pps": 5.0,
        "dropped_bps": 40.0,
        "protocols": {"tcp": 600.0, "udp": 300.0, "icmp": 50.0, "fragment": 10.0, "other": 50.0},
        "tcp_flags": {"syn": 20.0, "ack": 500.0, "rst": 1.0},
        "attack": True,
        "baseline_avg_pps": 900.0,
        "baseline_p95_pps": 1100.0,
        "baseline_p99_pps": 1200.0,
    }
    assert plane.wait_for(lambda: any(b.json()["attack_state"] == "attack"
                                      for b in plane.of("heartbeat")))  # fmt: skip
    beat = next(b.json() for b in plane.of("heartbeat") if b.json()["attack_state"] == "attack")
    assert beat["xdp_mode"] == "none"  # no datapath in this test
    assert beat["baseline_state"] == "ready"
    assert beat["interface"] == "veth-t"
    assert beat["rules_active"] == 1


def test_incident_lifecycle_becomes_open_update_resolve(plane, sink, tmp_path) -> None:
    sink.incident_opened(INCIDENT)
    sink.incident_updated({**INCIDENT, "peak_pps": 70000, "severity": "critical"}, True)
    pcap = tmp_path / "x.pcap"
    pcap.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 40)
    sink.pcap_ready(INC, str(pcap))
    sink.incident_resolved({**INCIDENT, "status": "resolved", "ended_at_unix": 1_700_000_030.0})
    assert plane.wait_for(lambda: len(plane.of(f"incidents/{INC}/resolve")) == 1)
    opened = plane.of("incidents")[0].json()
    assert opened["uuid"] == INC
    assert opened["started_at"] == 1_700_000_000.0
    f = opened["figures"]
    assert f["seq"] == 1
    assert f["family"] == "memcached_amplification"
    assert f["protocols"] == {"tcp": 1.0, "udp": 99.0, "icmp": 0.0, "other": 0.0}
    assert f["top_sources"] == [{"ip": "8.8.8.8", "pps": 30000.0, "bps": 3e8}]
    assert f["source_count"] == 57  # distinct sources the loop saw, not len(top_sources)
    assert f["rules"] == [
        {"kind": "signature", "match": "signature proto=17 sport=11211", "ttl_sec": 300},
        {"kind": "rate_limit", "match": "src 8.8.8.8/32 rate<=100pps", "action": "rate_limit",
         "ttl_sec": 300},
    ]  # fmt: skip
    assert f["mitigated_at"] == pytest.approx(1_700_000_000.25)
    update = plane.of(f"incidents/{INC}")[0].json()["figures"]
    assert (update["seq"], update["peak_pps"], update["severity"]) == (2, 70000.0, "critical")
    resolved = plane.of(f"incidents/{INC}/resolve")[0].json()
    assert resolved["ended_at"] == 1_700_000_030.0
    assert resolved["figures"]["seq"] == 3
    order = [p for p in plane.paths() if p.startswith("incidents")]
    assert order == ["incidents", f"incidents/{INC}", f"incidents/{INC}/pcap",
                     f"incidents/{INC}/resolve"]  # fmt: skip


def test_overrides_and_commands_without_a_datapath(plane, sink) -> None:
    plane.behaviour.config = {
        "config_version": 4,
        "thresholds": {"multiplier": 5.0, "floors": {"pps": 1.0}},
        "mitigation_mode": "dry_run",
        "allowlist": ["198.51.100.0/24"],
        "sampling": {"idle_samples_per_s": 10, "attack_samples_per_s": 900},
        "commands": [{"id": 9, "action": "block", "target": "203.0.113.9"}],
    }
    got: list[Overrides] = []

    def arrived() -> bool:
        o = sink.poll_overrides()
        if o is not None:
            got.append(o)
        return bool(got)

    assert plane.wait_for(arrived)
    o = got[0]
    assert (o.multiplier, o.floors, o.mitigation_mode, o.allowlist) == (
        5.0, {"pps": 1.0}, "dry_run", ["198.51.100.0/24"],
    )  # fmt: skip
    assert (o.idle_samples_per_s, o.attack_samples_per_s) == (10, 900)
    assert plane.wait_for(lambda: bool(plane.of("commands/ack")))
    assert plane.of("commands/ack")[0].json() == {
        "acks": [{"id": 9, "ok": False, "error": "agent runs without a datapath"}]
    }
    assert sink.poll_overrides() is None  # nothing new


def test_operator_commands_are_applied_under_the_agents_datapath_lock(
    plane: LoopbackControlPlane, tmp_path: Path
) -> None:
    """While another thread (the agent's /metrics scrape, say) holds the datapath lock, a
    command is not applied; it is once the lock is free, on the polling thread."""
    lock = threading.RLock()
    s = ControlSink(config(plane, tmp_path), datapath=None, lock=lock)
    plane.behaviour.config = {
        "config_version": 2,
        "thresholds": {},
        "commands": [{"id": 5, "action": "unblock", "target": "203.0.113.9"}],
    }
    got: list[Overrides] = []
    stop = threading.Event()

    def poll() -> None:  # the agent loop's once-a-second call
        while not stop.is_set() and not got:
            o = s.poll_overrides()
            if o is not None:
                got.append(o)
            stop.wait(0.02)

    held = threading.Event()
    release = threading.Event()

    def scrape() -> None:
        with lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=scrape)
    poller = threading.Thread(target=poll)
    holder.start()
    assert held.wait(5)
    s.start()
    try:
        poller.start()
        assert plane.wait_for(lambda: bool(plane.of("config")))
        # The poller has the config but waits for the lock: nothing applied, nothing acked.
        assert not plane.wait_for(lambda: bool(plane.of("commands/ack")), timeout=1.0)
        assert got == []
        release.set()
        poller.join(10)
        assert len(got) == 1
        assert plane.wait_for(lambda: bool(plane.of("commands/ack")))
        assert plane.of("commands/ack")[0].json() == {
            "acks": [{"id": 5, "ok": False, "error": "agent runs without a datapath"}]
        }
    finally:
        release.set()
        stop.set()
        holder.join(10)
        if poller.is_alive():
            poller.join(10)
        s.close()

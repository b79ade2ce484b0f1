"""ControlSink: the agent loop's typed reports become Agent API messages on a real loopback
server, field by field; the control plane's settings and commands come back to the loop,
its acks go out; the heartbeat says what the loop's last status said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from ftagent.config import Config, decode
from ftagent.events import AgentStatus, IncidentReport
from ftagent.report.sink import ControlSink
from ftcontract import agent_api
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
    s = ControlSink(config(plane, tmp_path))
    s.start(STATUS)
    yield s
    s.close()


STATUS = AgentStatus(
    interface="veth-t",
    xdp_mode="generic",
    baseline_state="learning",
    attack=False,
    pps=0.0,
    rules_active=0,
    mitigation_mode="on",
)

POINT = agent_api.MetricPoint(
    ts=1_700_000_000.4,
    pps=1000.0,
    bps=8e6,
    dropped_pps=5.0,
    dropped_bps=40.0,
    protocols={"tcp": 600.0, "udp": 300.0, "icmp": 50.0, "fragment": 10.0, "other": 50.0},
    tcp_flags={"syn": 20.0, "ack": 500.0, "rst": 1.0},
    attack=True,
    baseline_avg_pps=900.0,
    baseline_p95_pps=1100.0,
    baseline_p99_pps=1200.0,
)

FIGURES = agent_api.IncidentFigures(
    seq=1,
    family="memcached_amplification",
    subtype="reflection",
    severity="high",
    peak_pps=50000.0,
    peak_bps=5e8,
    peak_burst_pps=90000.0,
    peak_burst_bps=9e8,
    current_pps=40000.0,
    baseline_p99_pps=1200.0,
    threshold_pps=5000.0,
    protocols={"tcp": 1.0, "udp": 99.0, "icmp": 0.0, "other": 0.0},
    top_sources=[agent_api.SourceFigure(ip="8.8.8.8", pps=30000.0, bps=3e8)],
    source_count=57,
    evidence={"udp_share": 0.99},
    rules=[
        agent_api.RuleFigure(
            kind="signature", match="signature proto=17 sport=11211", ttl_sec=77, proto=17,
            src_port=11211, dropped_packets=12,
        ),
    ],
    mitigated_at=1_700_000_000.25,
)  # fmt: skip

REPORT = IncidentReport(uuid=INC, started_at=1_700_000_000.0, figures=FIGURES, mitigation_mode="on")


def test_metrics_and_heartbeat_carry_the_loops_figures(plane, sink) -> None:
    sink.metrics_second(
        POINT,
        msgspec.structs.replace(
            STATUS, attack=True, baseline_state="ready", rules_active=1, pps=1000.0
        ),
    )
    assert plane.wait_for(lambda: bool(plane.of("metrics")))
    (point,) = plane.of("metrics")[0].json()["points"]
    assert point == msgspec.to_builtins(POINT)
    assert plane.wait_for(lambda: any(b.json()["attack_state"] == "attack"
                                      for b in plane.of("heartbeat")))  # fmt: skip
    beat = next(b.json() for b in plane.of("heartbeat") if b.json()["attack_state"] == "attack")
    assert beat["xdp_mode"] == "generic"
    assert beat["baseline_state"] == "ready"
    assert beat["interface"] == "veth-t"
    assert (beat["rules_active"], beat["pps"]) == (1, 1000.0)


def test_heartbeat_reports_the_mode_in_force_after_an_override_is_cleared(plane, sink) -> None:
    """Bug: a cleared mitigation-mode override left the heartbeat on the old mode. The
    heartbeat now says what the loop's status says (the mitigator's mode)."""
    sink.metrics_second(POINT, msgspec.structs.replace(STATUS, mitigation_mode="dry_run"))
    assert plane.wait_for(lambda: any(b.json()["mitigation_mode"] == "dry_run"
                                      for b in plane.of("heartbeat")))  # fmt: skip
    sink.metrics_second(POINT, STATUS)  # the loop went back to its own mode ("on")
    n = len(plane.of("heartbeat"))
    assert plane.wait_for(lambda: len(plane.of("heartbeat")) > n)
    assert plane.of("heartbeat")[-1].json()["mitigation_mode"] == "on"


def test_incident_lifecycle_becomes_open_update_resolve(plane, sink, tmp_path) -> None:
    sink.incident_opened(REPORT)
    later = msgspec.structs.replace(FIGURES, seq=2, peak_pps=70000.0, severity="critical")
    sink.incident_updated(msgspec.structs.replace(REPORT, figures=later), True)
    pcap = tmp_path / "x.pcap"
    pcap.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 40)
    sink.pcap_ready(INC, pcap)
    last = msgspec.structs.replace(FIGURES, seq=3)
    sink.incident_resolved(
        msgspec.structs.replace(
            REPORT, figures=last, ended_at=1_700_000_030.0, reason="agent_stopped"
        )
    )
    assert plane.wait_for(lambda: len(plane.of(f"incidents/{INC}/resolve")) == 1)
    opened = plane.of("incidents")[0].json()
    assert opened["uuid"] == INC
    assert opened["started_at"] == 1_700_000_000.0
    # field by field: what the loop built is what the control plane receives
    assert opened["figures"] == msgspec.to_builtins(FIGURES)
    update = plane.of(f"incidents/{INC}")[0].json()["figures"]
    assert (update["seq"], update["peak_pps"], update["severity"]) == (2, 70000.0, "critical")
    resolved = plane.of(f"incidents/{INC}/resolve")[0].json()
    assert resolved["ended_at"] == 1_700_000_030.0
    assert resolved["reason"] == "agent_stopped"
    assert resolved["figures"]["seq"] == 3
    order = [p for p in plane.paths() if p.startswith("incidents")]
    assert order == ["incidents", f"incidents/{INC}", f"incidents/{INC}/pcap",
                     f"incidents/{INC}/resolve"]  # fmt: skip


def test_settings_and_commands_reach_the_loop_and_acks_go_back(plane, sink) -> None:
    plane.behaviour.config = {
        "config_version": 4,
        "thresholds": {"multiplier": 5.0, "floors": {"pps": 1.0}},
        "mitigation_mode": "dry_run",
        "allowlist": ["198.51.100.0/24"],
        "sampling": {"idle_samples_per_s": 10, "attack_samples_per_s": 900},
        "commands": [{"id": 9, "action": "block", "target": "203.0.113.9"}],
    }
    got: list[agent_api.AgentConfig] = []

    def arrived() -> bool:
        # The sink may have fetched the plane's first config (version 1) before this test
        # set version 4: the loop gets both, in order; version 4 is the one to check.
        o = sink.poll_control()
        if o is not None:
            got.append(o)
        return any(c.config_version == 4 for c in got)

    assert plane.wait_for(arrived)
    assert [c.config_version for c in got] in ([4], [1, 4])
    o = got[-1]
    assert (o.thresholds.multiplier, o.thresholds.floors, o.mitigation_mode, o.allowlist) == (
        5.0, {"pps": 1.0}, "dry_run", ["198.51.100.0/24"],
    )  # fmt: skip
    assert (o.sampling.idle_samples_per_s, o.sampling.attack_samples_per_s) == (10, 900)
    assert [(c.id, c.action, c.target) for c in o.commands] == [(9, "block", "203.0.113.9")]
    sink.commands_done([agent_api.CommandAck(id=9, ok=False, error="x is protected (allow-list)")])
    assert plane.wait_for(lambda: bool(plane.of("commands/ack")))
    assert plane.of("commands/ack")[0].json() == {
        "acks": [{"id": 9, "ok": False, "error": "x is protected (allow-list)"}]
    }
    assert sink.poll_control() is None  # nothing new


def test_reporting_state_says_reachable_unreachable_and_the_spool(plane, sink) -> None:
    """What /health's `control_plane` shows: the breaker, the spool and the last error,
    through an outage of the control plane and its end."""
    assert plane.wait_for(lambda: bool(plane.of("heartbeat")))
    state = sink.reporting_state()
    assert (state.server, state.breaker, state.last_error) == (plane.url, "closed", None)
    plane.stop()
    for i in range(5):
        sink.metrics_second(msgspec.structs.replace(POINT, ts=POINT.ts + i), STATUS)
    assert plane.wait_for(lambda: sink.reporting_state().breaker != "closed")
    down = sink.reporting_state()
    assert down.failures >= 1 and down.last_error, down
    assert plane.wait_for(lambda: sink.reporting_state().spooled >= 1)
    plane.start()  # the same port again
    assert plane.wait_for(
        lambda: sink.reporting_state().breaker == "closed" and sink.reporting_state().spooled == 0,
        timeout=20.0,
    )
    assert sink.reporting_state().sent_batches > down.sent_batches

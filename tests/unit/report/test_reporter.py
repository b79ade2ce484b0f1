"""The reporter against a real HTTP server on loopback: batching, order, outages,
rejections, restarts, commands and pcap uploads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ftagent.report.reporter import Reporter, ReporterSettings
from ftcontract import agent_api
from tests.unit.report.loopback import LoopbackControlPlane

NODE = "0b7c6a52-3d1e-4f7e-9a61-2c3d4e5f6a7b"
KEY = "cd" * 32


def settings(plane: LoopbackControlPlane, tmp_path: Path, **kw: object) -> ReporterSettings:
    base: dict[str, object] = {
        "server": plane.url,
        "api_key": KEY,
        "node_uuid": NODE,
        "spool_path": tmp_path / "spool" / "reports.db",
        "heartbeat_interval_s": 0.3,
        "metrics_interval_s": 0.2,
        "config_interval_s": 0.5,
        "config_interval_attack_s": 0.2,
        "timeout_s": 1.0,
        "spool_max_bytes": 50 * 1024 * 1024,
        "verify_tls": True,
        "connect_timeout_s": 0.5,
        "breaker_failures": 2,
        "breaker_reset_s": 0.2,
        "breaker_max_reset_s": 0.4,
    }
    base.update(kw)
    return ReporterSettings(**base)  # type: ignore[arg-type]


def status() -> agent_api.Heartbeat:
    return agent_api.Heartbeat(version="t", xdp_mode="generic", interface="veth0")


def figures(seq: int, peak: float) -> agent_api.IncidentFigures:
    return agent_api.IncidentFigures(seq=seq, family="udp_flood", severity="high", peak_pps=peak)


@pytest.fixture
def make_reporter(plane: LoopbackControlPlane, tmp_path: Path) -> Iterator[object]:
    made: list[Reporter] = []

    def make(**kw: object) -> Reporter:
        r = Reporter(settings(plane, tmp_path, **kw), status)
        made.append(r)
        r.start()
        return r

    yield make
    for r in made:
        r.stop(flush_timeout_s=0.2)


def points(plane: LoopbackControlPlane) -> list[float]:
    return [p["ts"] for r in plane.of("metrics") for p in r.json()["points"]]


def test_heartbeat_carries_auth_and_status(plane, make_reporter) -> None:
    make_reporter()
    assert plane.wait_for(lambda: len(plane.of("heartbeat")) >= 2)
    beat = plane.of("heartbeat")[0]
    assert beat.headers["Authorization"] == f"Bearer {KEY}"
    assert beat.headers["X-Node-UUID"] == NODE
    body = beat.json()
    assert body["xdp_mode"] == "generic"
    assert body["interface"] == "veth0"
    assert body["spool_size"] == 0


def test_metrics_are_batched_in_order(plane, make_reporter) -> None:
    r = make_reporter(metrics_interval_s=0.5)
    for i in range(20):
        r.report_metrics(agent_api.MetricPoint(ts=1000.0 + i, pps=10.0 * i, bps=1.0))
    assert plane.wait_for(lambda: len(points(plane)) == 20)
    assert points(plane) == [1000.0 + i for i in range(20)]
    # 20 points in at most a few posts, not one post each
    assert len(plane.of("metrics")) < 5


def test_incident_event_goes_out_before_the_metrics_interval(plane, make_reporter) -> None:
    r = make_reporter(metrics_interval_s=30.0, heartbeat_interval_s=30.0)
    assert plane.wait_for(lambda: len(plane.of("heartbeat")) == 1)
    r.report_incident_opened("inc-1", 1000.0, figures(1, 5e5))
    # Well before the 30 s metrics interval: the event wakes the sender.
    assert plane.wait_for(lambda: len(plane.of("incidents")) == 1, timeout=5.0)
    body = plane.of("incidents")[0].json()
    assert body == {
        "uuid": "inc-1",
        "started_at": 1000.0,
        "figures": {"seq": 1, "family": "udp_flood", "severity": "high", "peak_pps": 500000.0},
    }


def test_outage_spools_then_replays_everything_once_in_order(plane, make_reporter) -> None:
    r = make_reporter()
    assert plane.wait_for(lambda: len(plane.of("heartbeat")) >= 1)
    plane.stop()  # connections refused from now on
    r.report_metrics(agent_api.MetricPoint(ts=1.0, pps=1.0, bps=1.0))
    r.report_incident_opened("inc-9", 2.0, figures(1, 100.0))
    for i in range(2, 12):
        r.report_metrics(agent_api.MetricPoint(ts=float(i + 1), pps=1.0, bps=1.0))
        r.report_incident_updated("inc-9", figures(i, 100.0 * i))
    r.report_incident_resolved("inc-9", 20.0, figures(12, 1100.0))
    assert plane.wait_for(lambda: r.spool_size == 23 and r.breaker_state != "closed")
    assert r.stats.failures >= 2
    beats_before = len(plane.of("heartbeat"))
    plane.start()  # same port
    assert plane.wait_for(lambda: r.spool_size == 0, timeout=15.0)
    assert plane.wait_for(lambda: len(plane.of("heartbeat")) > beats_before)
    events = [p for p in plane.paths() if p.startswith("incidents")]
    assert events == ["incidents"] + ["incidents/inc-9"] * 10 + ["incidents/inc-9/resolve"]
    seqs = [r_.json()["figures"]["seq"] for r_ in plane.requests if "incidents" in r_.path]
    assert seqs == list(range(1, 13))
    assert points(plane) == [1.0, *(float(i + 1) for i in range(2, 12))]
    # the open went out before any metric point that followed it
    order = [p for p in plane.paths() if p in ("metrics", "incidents")]
    assert order[:2] == ["metrics", "incidents"]


def test_server_errors_keep_entries_client_errors_drop_them(plane, make_reporter) -> None:
    plane.behaviour.force_status = 503
    r = make_reporter()
    r.report_incident_opened("inc-a", 1.0, figures(1, 1.0))
    # The 503 for the open itself, then the entry in the spool: the reporter's thread
    # spools after the answer, so wait for both (a heartbeat's 503 may come first).
    assert plane.wait_for(
        lambda: any(x.path.endswith("/incidents") for x in plane.refused) and r.spool_size == 1
    )
    assert r.spool_size == 1  # a 503 is transient: kept
    plane.behaviour.force_status = None
    plane.behaviour.status_for = {"incidents/inc-b": 404}
    r.report_incident_updated("inc-b", figures(2, 1.0))  # refused for good
    r.report_incident_resolved("inc-a", 3.0, figures(3, 1.0))
    assert plane.wait_for(lambda: r.spool_size == 0)
    assert [p for p in plane.paths() if p.startswith("incidents")] == [
        "incidents",
        "incidents/inc-a/resolve",
    ]
    assert r.stats.rejected == 1
    assert "404" in r.stats.last_error


def test_spool_survives_a_restart_of_the_agent(plane, tmp_path, make_reporter) -> None:
    plane.stop()
    first = Reporter(settings(plane, tmp_path), status)
    first.start()
    first.report_incident_opened("inc-r", 1.0, figures(1, 1.0))
    first.report_metrics(agent_api.MetricPoint(ts=5.0, pps=1.0, bps=1.0))
    assert plane.wait_for(lambda: first.spool_size == 2)
    first.stop(flush_timeout_s=0.2)
    plane.start()
    second = make_reporter()
    assert plane.wait_for(lambda: second.spool_size == 0 and len(points(plane)) == 1)
    assert plane.of("incidents")[0].json()["uuid"] == "inc-r"


def wait_control(plane: LoopbackControlPlane, r: Reporter) -> agent_api.AgentConfig:
    got: list[agent_api.AgentConfig] = []

    def arrived() -> bool:
        cfg = r.take_control()
        if cfg is not None:
            got.append(cfg)
        return bool(got)

    assert plane.wait_for(arrived)
    return got[0]


def test_config_and_commands_are_handed_over_once_and_acked(plane, make_reporter) -> None:
    plane.behaviour.config = {
        "config_version": 7,
        "thresholds": {"multiplier": 4.0},
        "mitigation_mode": "dry_run",
        "commands": [{"id": 3, "action": "block", "target": "198.51.100.7", "ttl_s": 60.0}],
    }
    r = make_reporter()
    cfg = wait_control(plane, r)
    assert cfg.config_version == 7
    assert cfg.thresholds.multiplier == 4.0
    assert cfg.mitigation_mode == "dry_run"
    assert [(c.id, c.action, c.target, c.ttl_s) for c in cfg.commands] == [
        (3, "block", "198.51.100.7", 60.0)
    ]
    # Still pending on the server (not acked yet), fetched again: not handed over twice.
    fetched = len(plane.of("config"))
    assert plane.wait_for(lambda: len(plane.of("config")) >= fetched + 2)
    assert r.take_control() is None
    r.ack_commands([agent_api.CommandAck(id=3, ok=True)])
    assert plane.wait_for(lambda: len(plane.of("commands/ack")) == 1)
    assert plane.of("commands/ack")[0].json() == {"acks": [{"id": 3, "ok": True, "error": ""}]}
    # A new version is handed over again (with no commands left to run).
    plane.behaviour.config = {"config_version": 8, "thresholds": {}, "commands": []}
    assert wait_control(plane, r).config_version == 8


def test_pcap_is_uploaded_as_multipart(plane, tmp_path, make_reporter) -> None:
    pcap = tmp_path / "inc.pcap"
    pcap.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 60)
    r = make_reporter()
    r.report_pcap("inc-p", pcap)
    r.report_pcap("inc-gone", tmp_path / "missing.pcap")  # dropped, does not block the queue
    r.report_incident_resolved("inc-p", 2.0, figures(2, 1.0))
    assert plane.wait_for(lambda: len(plane.of("incidents/inc-p/resolve")) == 1)
    up = plane.of("incidents/inc-p/pcap")
    assert len(up) == 1
    assert up[0].headers["Content-Type"].startswith("multipart/form-data")
    assert b"\xd4\xc3\xb2\xa1" in up[0].body
    assert r.stats.rejected == 1


def test_reports_queued_at_stop_reach_the_spool(plane, tmp_path) -> None:
    plane.stop()
    r = Reporter(settings(plane, tmp_path), status)  # never started: nothing sent
    r.report_incident_opened("inc-late", 1.0, figures(1, 1.0))
    r.stop(flush_timeout_s=0.1)
    plane.start()
    again = Reporter(settings(plane, tmp_path), status)
    again.start()
    try:
        assert plane.wait_for(lambda: len(plane.of("incidents")) == 1)
    finally:
        again.stop(flush_timeout_s=0.2)
    assert plane.of("incidents")[0].json()["uuid"] == "inc-late"


def test_a_refused_point_does_not_take_its_batch_with_it(plane, make_reporter) -> None:
    plane.behaviour.bad_metric_ts = {1005.0}
    r = make_reporter(metrics_interval_s=0.5)
    for i in range(10):
        r.report_metrics(agent_api.MetricPoint(ts=1000.0 + i, pps=1.0, bps=1.0))
    assert plane.wait_for(lambda: r.spool_size == 0 and len(set(points(plane))) == 9)
    assert sorted(set(points(plane))) == [1000.0 + i for i in range(10) if i != 5]
    assert r.stats.rejected == 1


def test_each_point_is_posted_as_soon_as_it_is_queued(plane, make_reporter) -> None:
    """No waiting for metrics_interval_s (the control plane sums each real second of a
    group's nodes): 30 s here, the point arrives at once."""
    r = make_reporter(metrics_interval_s=30.0, heartbeat_interval_s=30.0)
    assert plane.wait_for(lambda: len(plane.of("heartbeat")) == 1)
    r.report_metrics(agent_api.MetricPoint(ts=1000.0, pps=1.0, bps=1.0))
    assert plane.wait_for(lambda: points(plane) == [1000.0], timeout=5.0)
    r.report_metrics(agent_api.MetricPoint(ts=1001.0, pps=1.0, bps=1.0))
    assert plane.wait_for(lambda: points(plane) == [1000.0, 1001.0], timeout=5.0)


def test_fetch_config_now_fetches_between_periods(plane, make_reporter) -> None:
    r = make_reporter(config_interval_s=60.0, heartbeat_interval_s=60.0)
    assert plane.wait_for(lambda: len(plane.of("config")) == 1)  # the fetch at start
    plane.behaviour.config = {"config_version": 2, "thresholds": {}, "commands": []}
    r.fetch_config_now()
    assert plane.wait_for(lambda: len(plane.of("config")) == 2, timeout=5.0)
    control = r.take_control()
    assert control is not None and control.config_version == 2

"""`ControlSink`: the agent loop's EventSink (ftagent.events) backed by the Reporter.

It hands the loop's typed reports to the reporter's queue as Agent API messages, field
by field, and serves the control plane's newest settings and operator commands to the
loop (`poll_control`), which applies them on its own thread and answers through
`commands_done`. The heartbeat says what the loop's last `AgentStatus` said.
"""

from __future__ import annotations

import time
from pathlib import Path

from ftagent import __version__
from ftagent.config import Config
from ftagent.events import AgentStatus, IncidentReport, ReportingState, RuleChange
from ftagent.orders.fleet import FleetInbox
from ftagent.report.client import AgentClient
from ftagent.report.fleet_watch import FleetWatcher, WatchTimings
from ftagent.report.reporter import Reporter, ReporterSettings
from ftcontract import agent_api

SPOOL_FILE = "reports.db"


def settings_from_config(cfg: Config) -> ReporterSettings:
    control = cfg.control
    if control is None:
        raise ValueError("the config has no [control] section")
    spool_dir = Path(control.spool_dir or Path(cfg.agent.state_dir) / "spool")
    return ReporterSettings(
        server=control.server,
        api_key=control.api_key,
        node_uuid=control.node_uuid,
        spool_path=spool_dir / SPOOL_FILE,
        heartbeat_interval_s=control.heartbeat_interval_s,
        metrics_interval_s=control.metrics_interval_s,
        config_interval_s=control.config_interval_s,
        config_interval_attack_s=control.config_interval_attack_s,
        timeout_s=control.timeout_s,
        spool_max_bytes=control.spool_max_bytes,
        verify_tls=control.verify_tls,
    )


def fleet_watcher(
    settings: ReporterSettings, inbox: FleetInbox, reporter: Reporter, timings: WatchTimings
) -> FleetWatcher:
    """The watcher of fleet orders, on its own connection, wired to the reporter: a moved
    config makes it fetch /config at once; a metrics reply's fleet version hints it."""
    client = AgentClient(
        settings.server,
        settings.api_key,
        settings.node_uuid,
        connect_timeout_s=settings.connect_timeout_s,
        timeout_s=settings.timeout_s,
        verify_tls=settings.verify_tls,
    )
    watcher = FleetWatcher(client, inbox.put, reporter.fetch_config_now, timings)
    reporter.on_fleet_version = watcher.hint
    return watcher


class ControlSink:
    def __init__(
        self,
        cfg: Config,
        settings: ReporterSettings | None = None,
        timings: WatchTimings | None = None,
    ) -> None:
        """`timings`: the fleet watcher's (tests shorten them); else [control]'s."""
        self._cfg = cfg
        settings = settings or settings_from_config(cfg)
        self._reporter = Reporter(settings, self._heartbeat)
        self._status: AgentStatus | None = None
        self._started = time.monotonic()
        self._last_overrides: agent_api.Overrides | None = None
        # The fleet orders the watcher receives, for the agent loop (Agent(fleet_inbox=)).
        self.fleet_inbox = FleetInbox()
        self.watcher: FleetWatcher | None = None
        control = cfg.control
        if control is not None and control.fleet_watch:
            timings = timings or WatchTimings(wait_s=control.fleet_wait_s)
            self.watcher = fleet_watcher(settings, self.fleet_inbox, self._reporter, timings)

    @property
    def reporter(self) -> Reporter:
        return self._reporter

    # ---- EventSink ---------------------------------------------------------------------

    def start(self, status: AgentStatus) -> None:
        self._status = status
        self._reporter.start()
        if self.watcher is not None:
            self.watcher.start()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self._reporter.stop()

    def metrics_second(self, point: agent_api.MetricPoint, status: AgentStatus) -> None:
        self._status = status
        self._reporter.set_attack(status.attack)
        self._reporter.report_metrics(point)

    def incident_opened(self, report: IncidentReport) -> None:
        self._reporter.report_incident_opened(report.uuid, report.started_at, report.figures)

    def incident_updated(self, report: IncidentReport, escalated: bool) -> None:
        self._reporter.report_incident_updated(report.uuid, report.figures)

    def incident_resolved(self, report: IncidentReport) -> None:
        ended = report.ended_at if report.ended_at is not None else time.time()
        self._reporter.report_incident_resolved(
            report.uuid, ended, report.figures, report.reason or "cooled_down"
        )

    def rule_changed(self, change: RuleChange) -> None:
        # Rules reach the control plane inside the incident figures (with drop counts);
        # a separate stream of rule events would say the same thing twice.
        return None

    def pcap_ready(self, incident_uuid: str, path: Path) -> None:
        self._reporter.report_pcap(incident_uuid, path)

    def poll_control(self) -> agent_api.AgentConfig | None:
        """New commands always; the settings only when they differ from the last ones."""
        cfg = self._reporter.take_control()
        if cfg is None:
            return None
        overrides = agent_api.Overrides(
            thresholds=cfg.thresholds,
            mitigation_mode=cfg.mitigation_mode,
            rule_ttl_s=cfg.rule_ttl_s,
            allowlist=cfg.allowlist,
            sampling=cfg.sampling,
        )
        if overrides == self._last_overrides and not cfg.commands:
            return None
        self._last_overrides = overrides
        return cfg

    def commands_done(self, acks: list[agent_api.CommandAck]) -> None:
        self._reporter.ack_commands(acks)

    def reporting_state(self) -> ReportingState:
        """For the loop's views (asked once a second; reads the reporter's counters only)."""
        r = self._reporter
        return ReportingState(
            server=r.settings.server,
            breaker=r.breaker_state,
            spooled=r.spool_size,
            sent_batches=r.stats.sent_batches,
            failures=r.stats.failures,
            last_error=r.stats.last_error or None,
        )

    # ---- the heartbeat -----------------------------------------------------------------

    def _heartbeat(self) -> agent_api.Heartbeat:
        st = self._status
        uptime = round(time.monotonic() - self._started, 1)
        if st is None:  # not started by a loop
            return agent_api.Heartbeat(
                version=__version__,
                xdp_mode="none",
                interface=self._cfg.agent.interface,
                uptime_s=uptime,
                mitigation_mode=self._cfg.mitigation.mode,
            )
        return agent_api.Heartbeat(
            version=__version__,
            xdp_mode=st.xdp_mode,
            interface=st.interface,
            baseline_state=st.baseline_state,
            attack_state="attack" if st.attack else "normal",
            uptime_s=uptime,
            pps=st.pps,
            rules_active=st.rules_active,
            mitigation_mode=st.mitigation_mode,
        )

"""`ShieldedSink`: the loop's view of its EventSink, where a failing sink costs an event,
never a window: detection and mitigation must go on whatever the reporter does."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ftagent.events import AgentStatus, EventSink, IncidentReport, RuleChange
from ftcontract import agent_api

log = logging.getLogger("ftagent.agent")

_T = TypeVar("_T")


def _shielded(what: str, call: Callable[[], _T]) -> _T | None:
    try:
        return call()
    except Exception:
        log.exception("event sink %s failed", what)
        return None


class ShieldedSink:
    """Forwards each call to `sink`; an exception is logged and the call returns None."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    def start(self, status: AgentStatus) -> None:
        _shielded("start", lambda: self.sink.start(status))

    def incident_opened(self, report: IncidentReport) -> None:
        _shielded("incident_opened", lambda: self.sink.incident_opened(report))

    def incident_updated(self, report: IncidentReport, escalated: bool) -> None:
        _shielded("incident_updated", lambda: self.sink.incident_updated(report, escalated))

    def incident_resolved(self, report: IncidentReport) -> None:
        _shielded("incident_resolved", lambda: self.sink.incident_resolved(report))

    def metrics_second(self, point: agent_api.MetricPoint, status: AgentStatus) -> None:
        _shielded("metrics_second", lambda: self.sink.metrics_second(point, status))

    def rule_changed(self, change: RuleChange) -> None:
        _shielded("rule_changed", lambda: self.sink.rule_changed(change))

    def rules_changed(self, changes: list[RuleChange]) -> None:
        for c in changes:
            self.rule_changed(c)

    def pcap_ready(self, incident_uuid: str, path: Path) -> None:
        _shielded("pcap_ready", lambda: self.sink.pcap_ready(incident_uuid, path))

    def poll_control(self) -> agent_api.AgentConfig | None:
        return _shielded("poll_control", self.sink.poll_control)

    def commands_done(self, acks: list[agent_api.CommandAck]) -> None:
        _shielded("commands_done", lambda: self.sink.commands_done(acks))

    def close(self) -> None:
        _shielded("close", self.sink.close)

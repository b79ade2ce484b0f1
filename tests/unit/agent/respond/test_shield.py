"""A sink that raises costs the event, never the loop: the error is logged, the call
returns, and later calls still reach the sink."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ftagent.events import NullSink
from ftagent.respond.shield import ShieldedSink
from ftcontract.agent_api import AgentConfig


class BrokenReporter(NullSink):
    """A sink whose pcap upload and control fetch are broken."""

    def __init__(self) -> None:
        self.pcaps: list[str] = []

    def pcap_ready(self, incident_uuid: str, path: Path) -> None:
        self.pcaps.append(incident_uuid)
        raise OSError("disk full")

    def poll_control(self) -> AgentConfig | None:
        raise RuntimeError("decoder bug")


def test_sink_errors_are_logged_and_contained(caplog: pytest.LogCaptureFixture) -> None:
    inner = BrokenReporter()
    sink = ShieldedSink(inner)
    with caplog.at_level(logging.ERROR):
        sink.pcap_ready("a", Path("/x.pcap"))
        assert sink.poll_control() is None
        sink.pcap_ready("b", Path("/y.pcap"))
    assert inner.pcaps == ["a", "b"]
    assert "event sink pcap_ready failed" in caplog.text
    assert "event sink poll_control failed" in caplog.text

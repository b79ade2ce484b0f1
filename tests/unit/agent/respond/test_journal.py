"""The active incident's journal: written, read back as it was, cleared; an unreadable
file is ignored (and says so), never a reason not to start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ftagent.events import IncidentReport
from ftagent.respond.journal import IncidentJournal
from ftcontract.agent_api import IncidentFigures


def report() -> IncidentReport:
    figures = IncidentFigures(seq=4, family="udp_flood", severity="high", peak_pps=9e4)
    return IncidentReport(uuid="5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f", started_at=1.0e9,
                          figures=figures, mitigation_mode="on")  # fmt: skip


def test_saved_then_loaded_then_cleared(tmp_path: Path) -> None:
    j = IncidentJournal(tmp_path / "incident.json")
    assert j.load() is None
    j.save(report(), 1.0e9 + 30)
    entry = j.load()
    assert entry is not None and entry.report == report() and entry.last_seen == 1.0e9 + 30
    j.clear()
    assert j.load() is None and not (tmp_path / "incident.json").exists()


def test_an_unreadable_journal_is_ignored_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "incident.json").write_text('{"report": 7}')
    with caplog.at_level(logging.ERROR):
        assert IncidentJournal(tmp_path / "incident.json").load() is None
    assert "ignoring unreadable" in caplog.text and "report" in caplog.text

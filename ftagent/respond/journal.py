"""`IncidentJournal`: the active incident's last report, kept in state_dir so that no
incident stays active for ever on the control plane.

The loop writes it at every report of an active incident (at most once a second) and
removes it when the incident resolves (on a clean stop the agent resolves it itself, with
reason "agent_stopped"). A file found at start-up means the agent died during an
incident (kill -9, a crash, power): the new agent resolves it with reason
"agent_restarted", ended at the last time it was seen.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

from ftagent.events import IncidentReport

log = logging.getLogger("ftagent.agent")


class JournalEntry(msgspec.Struct, kw_only=True):
    report: IncidentReport
    last_seen: float  # Unix seconds of the report


class IncidentJournal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, report: IncidentReport, last_seen: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_bytes(msgspec.json.encode(JournalEntry(report=report, last_seen=last_seen)))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("could not save the active incident to %s: %s", self.path, exc)

    def load(self) -> JournalEntry | None:
        """The incident left active by a previous run, if any (a bad file is logged, skipped)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read %s: %s", self.path, exc)
            return None
        try:
            return msgspec.json.decode(data, type=JournalEntry)
        except msgspec.DecodeError as exc:
            log.error("ignoring unreadable %s: %s", self.path, exc)
            return None

    def clear(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("cannot remove %s: %s", self.path, exc)

"""No incident stays active for ever: a clean stop during an attack resolves the incident
("agent_stopped"); an agent that died during one (its journal left in state_dir) has it
resolved by the next start ("agent_restarted", ended when it was last seen)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import msgspec
import pytest

from ftagent.respond.journal import JournalEntry
from lab.agent_harness import RunningAgent, lab_config
from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]


def test_stop_resolves_and_a_restart_resolves_what_a_dead_agent_left(tmp_path: Path) -> None:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    from lab.netns import Lab
    from lab.trafgen import start_flood, stop_flood

    state = tmp_path / "state"
    journal = state / "incident.json"
    with Lab.create() as lab:
        cfg = lab_config(lab.victim_if, state)
        ra = RunningAgent(lab, cfg).start()
        flood = None
        try:
            ra.wait_baseline()
            t0 = time.monotonic_ns()
            flood = start_flood(lab, "memcached_amplification", packets=300_000, pps=20_000)
            ra.wait_for(lambda: bool(ra.sink.of("opened", t0)), 15, "the incident")
            ra.wait_for(journal.exists, 5, "the active incident's journal")
            left_behind = journal.read_bytes()  # what a kill -9 now would leave
        finally:
            ra.stop()
            if flood is not None:
                stop_flood(flood)
        assert ra.error is None, ra.error
        opened = ra.sink.of("opened", t0)[0].data
        (resolved,) = [e.data for e in ra.sink.of("resolved", t0)]
        assert (resolved.uuid, resolved.reason) == (opened.uuid, "agent_stopped")
        assert resolved.ended_at is not None and resolved.ended_at >= opened.started_at
        assert not journal.exists()

        # The agent "died" during the incident: its journal is still there at the start.
        journal.write_bytes(left_behind)
        entry = msgspec.json.decode(left_behind, type=JournalEntry)
        ra2 = RunningAgent(lab, cfg).start()
        try:
            ra2.wait_for(lambda: bool(ra2.sink.of("resolved")), 10, "the left-over resolve")
        finally:
            ra2.stop()
        (left,) = [e.data for e in ra2.sink.of("resolved")]
        assert (left.uuid, left.reason) == (opened.uuid, "agent_restarted")
        assert left.ended_at == entry.last_seen
        assert left.figures.seq == entry.report.figures.seq + 1
        assert not journal.exists()

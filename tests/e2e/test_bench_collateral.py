"""The collateral benchmark runs end to end (so it cannot rot): one small flood against
the real agent with mitigation on, in the collateral lab, and the table it prints.

Tiny settings on purpose: what the benchmark measures is its own business (a table, no
goals asserted); here only that every part of it ran and measured something real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.bench_collateral import CLASSES, Settings, run, table
from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]


def test_one_attack_runs_end_to_end_and_is_tabled(tmp_path: Path) -> None:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    settings = Settings(("udp_service_flood",), (4,), flood_s=1.0, pps=5000, modes=("on",),
                        quiet_s=1.0, before_s=0.5)  # fmt: skip
    quiet, rows, syn = run(settings, tmp_path, progress=False)
    assert [(o.attack, o.mode) for o in quiet] == [("(no flood)", "on")]
    # without a flood every legitimate class was served (the measurement is live)
    assert all(quiet[0].success(c) > 0.5 for c in CLASSES), quiet[0].legit
    (row,) = rows
    assert (row.attack, row.ip_version, row.mode) == ("udp_service_flood", 4, "on")
    assert row.achieved is not None and row.achieved.packets >= 5000  # the flood arrived
    assert row.legit.tcp_connect.attempts == 20 and row.legit.udp_request.attempts == 50
    fresh = row.legit.udp_new_client
    assert fresh is not None and fresh.attempts == 10  # ten clients never seen before
    assert row.download_before_bytes_s > 0
    # the path's counters were read (the client sent its requests through it)
    assert row.path is not None and row.path.hosts["client"].tx_packets > 0
    assert row.client_lost is not None
    lines = table(quiet, rows)
    assert any(line.startswith("udp_service_flood") for line in lines)
    assert any("clients first seen during the flood" in line for line in lines)
    assert syn == []  # no SYN-flood CPU case asked for

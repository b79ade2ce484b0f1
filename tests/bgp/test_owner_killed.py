"""ftcontrol killed outright: the relay loses its socket, ExaBGP exits with it (api
terminate), the session drops and BIRD forgets every route. Nothing stale stays upstream
without an owner."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.bird import FLOW4, BgpLab
from tests.bgp.daemons import eventually, table

pytestmark = [pytest.mark.lab, pytest.mark.bgp]
REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by its parent) has exited too
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


async def test_killed_owner_takes_exabgp_and_routes_with_it(
    bgp_lab: BgpLab, tmp_path: Path
) -> None:
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bgp.engine_process",
        bgp_lab.speaker_ns,
        str(tmp_path),
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert owner.stdout is not None
        async with asyncio.timeout(60):
            line = await owner.stdout.readline()
        exabgp_pid = int(line)
        [route] = await eventually(lambda: table(bgp_lab, FLOW4), "the owner's rule in BIRD")
        assert route.net == "flow4 { dst 203.0.113.7/32; proto 17; sport 123; }"
        owner.kill()
        await owner.wait()
        await eventually(lambda: not _alive(exabgp_pid), "ExaBGP to exit with its owner")
        await eventually(lambda: table(bgp_lab, FLOW4) == [], "BIRD to drop the rule")
        assert bgp_lab.session_state() != "Established"
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()

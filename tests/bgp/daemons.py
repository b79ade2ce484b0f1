"""Helpers for tests against the real daemons: wait for BIRD, run an engine in the lab."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

from control.bgp.engine import BgpEngine
from lab.bird import PROTOCOL, BgpLab, BirdRoute

T = TypeVar("T")


async def eventually(check: Callable[[], T], what: str, within: float = 30.0) -> T:
    """Poll `check` (run in a thread: birdc blocks) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_engine(
    lab: BgpLab, workdir: Path, *, protocol: str = PROTOCOL, **config: object
) -> AsyncIterator[BgpEngine]:
    """An engine speaking to the lab's BIRD; yields once BIRD's session `protocol` is
    established and the speaker reports its peer up."""
    engine = BgpEngine(lab.speaker_config(**config), workdir, argv_prefix=lab.speaker_argv_prefix)
    await engine.start()
    try:
        await eventually(
            lambda: lab.session_state(protocol) == "Established", f"BIRD {protocol} Established"
        )
        await eventually(
            lambda: engine.speaker.connected and engine.peers()[0].state == "up",
            "the speaker to report the peer up",
        )
        yield engine
    finally:
        await engine.stop()


def table(lab: BgpLab, name: str) -> list[BirdRoute]:
    """BGP routes in a BIRD table (the lab's static discard routes left out)."""
    return [r for r in lab.routes(name) if r.attributes.get("Type", "").startswith("BGP")]


async def wait_routes(
    lab: BgpLab, name: str, count: int, what: str, *, without: str = ""
) -> list[BirdRoute]:
    """Wait until BIRD's table `name` holds exactly `count` (> 0) BGP routes, none of
    whose network contains `without`; returns them."""

    def check() -> list[BirdRoute] | None:
        routes = table(lab, name)
        unwanted = bool(without) and any(without in r.net for r in routes)
        return routes if len(routes) == count and not unwanted else None

    found = await eventually(check, what)
    assert found is not None
    return found

"""The BGP part of the app's lifespan: the engine (ExaBGP supervised) with its announcements
in the store, the product's Upstream service and the automatic escalation, on
`app.state.upstream`. Without BGP settings (no --bgp-config) only an Upstream without an
engine is there, which answers every BGP request with "BGP is not configured"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
from litestar import Litestar
from litestar.datastructures import State

from control.bgp.auto import AutoEscalation
from control.bgp.config import BgpConfig
from control.bgp.engine import BgpEngine
from control.bgp.service import Upstream
from control.bgp.store import SqliteLedger
from control.nodes.service import NodeCaller
from ftcontract.agent_api import MetricPoint


@dataclass(frozen=True, slots=True)
class BgpSettings:
    config: BgpConfig
    workdir: Path  # ExaBGP's configuration, API socket and log
    argv_prefix: tuple[str, ...] = ()  # e.g. nsenter into a namespace (tests)
    exabgp: str = "exabgp"
    backoff_initial_s: float = 0.5


@dataclass(slots=True)
class UpstreamState:
    upstream: Upstream
    auto: AutoEscalation | None = None

    def on_points(self, node: NodeCaller, points: list[MetricPoint]) -> None:
        if self.auto is not None:
            self.auto.on_points(node.node_id, points)


def upstream_of(state: State) -> UpstreamState:
    found: UpstreamState = state.upstream
    return found


@asynccontextmanager
async def bgp_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs after the store's lifespan (it needs app.state.db, .incidents and .events)."""
    settings: BgpSettings | None = app.state.get("bgp_settings")
    db: aiosqlite.Connection = app.state.db
    if settings is None:
        app.state.upstream = UpstreamState(
            Upstream(db, app.state.incidents, app.state.events, None)
        )
        yield
        return
    engine = BgpEngine(
        settings.config,
        settings.workdir,
        argv_prefix=settings.argv_prefix,
        exabgp=settings.exabgp,
        backoff_initial_s=settings.backoff_initial_s,
        ledger=SqliteLedger(db),
    )
    upstream = Upstream(db, app.state.incidents, app.state.events, engine)
    auto = AutoEscalation(upstream, engine, db, app.state.events)
    app.state.upstream = UpstreamState(upstream, auto)
    await engine.start()
    try:
        await auto.start()
        yield
    finally:
        await auto.stop()
        await engine.stop()

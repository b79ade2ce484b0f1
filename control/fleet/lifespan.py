"""The fleet part of the app's lifespan: the engine on `app.state.fleet`.

Runs after the store's, the Agent API's and the BGP lifespans (it needs app.state.db,
.incidents and .upstream); stopped first, so the baselines are saved before the store
closes. On the stop signal (before uvicorn waits for the requests in flight) every held
long-poll is answered at once, so a stop does not wait for them. Settings:
`app.state.fleet_settings` (create_app(fleet=...), `ftcontrol serve --no-fleet`), else
FleetSettings.from_env().
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State

from control.core.stopping import on_stop_signal
from control.fleet.engine import FleetEngine
from control.fleet.settings import FleetSettings
from control.fleet.upstream import FleetUpstream


def fleet_of(state: State) -> FleetEngine:
    engine: FleetEngine = state.fleet
    return engine


@asynccontextmanager
async def fleet_lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: FleetSettings = app.state.get("fleet_settings") or FleetSettings.from_env()
    # the engine's wall clock (tests replay seconds faster than real time)
    clock: Callable[[], float] = app.state.get("fleet_clock") or time.time
    engine = FleetEngine(app.state.db, app.state.incidents, settings, clock=clock)
    upstream = app.state.get("upstream")
    if upstream is not None and upstream.upstream.engine is not None:
        engine.attach_upstream(FleetUpstream(upstream.upstream, settings, clock=clock))
    app.state.fleet = engine
    await engine.start()
    restore = on_stop_signal(engine.orders.close)
    try:
        yield
    finally:
        restore()
        await engine.stop()

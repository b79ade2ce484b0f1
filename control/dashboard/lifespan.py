"""The dashboard's part of the app's lifespan: incident changes feed the live hub."""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from litestar import Litestar

from control.dashboard.live import LiveHub, live_hub_of
from control.incidents.event_bus import IncidentEvent, IncidentEvents


@asynccontextmanager
async def dashboard_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs after the store's lifespan (which makes `app.state.events`)."""
    hub = live_hub_of(app.state)
    events: IncidentEvents = app.state.events

    async def forward(event: IncidentEvent) -> None:
        hub.publish_incident(event.workspace_id, event.kind, event.incident_uuid, event.incident)

    events.subscribe(forward)
    restore = _close_streams_on_stop(hub)
    try:
        yield
    finally:
        hub.closing = True
        restore()


def _close_streams_on_stop(hub: LiveHub) -> Any:
    """On SIGTERM/SIGINT, tell open live streams to end, then let the server's own handler
    (uvicorn's) run. Without this a stop waits for every open page. Returns the undo.

    Only where signals can be handled (the main thread: `ftcontrol serve`); test clients
    run the app in another thread and stop it themselves."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(sig: int, frame: FrameType | None) -> None:
        hub.closing = True  # a plain flag: safe to set from a signal handler
        chained = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

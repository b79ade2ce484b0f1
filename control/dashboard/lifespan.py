"""The dashboard's part of the app's lifespan: incident changes feed the live hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from control.dashboard.live import live_hub_of
from control.events import IncidentEvent, IncidentEvents


@asynccontextmanager
async def dashboard_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs after the store's lifespan (which makes `app.state.events`)."""
    hub = live_hub_of(app.state)
    events: IncidentEvents = app.state.events

    async def forward(event: IncidentEvent) -> None:
        hub.publish_incident(event.workspace_id, event.kind, event.incident_uuid, event.incident)

    events.subscribe(forward)
    yield

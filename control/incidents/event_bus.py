"""The incident change bus (in process): each committed incident change -> subscribers
(the notification dispatcher).

The incident service publishes after its write commits; subscribers (the notification
dispatcher) must not block: they persist what they need and return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from control.incidents.schemas import Incident

IncidentEventKind = Literal[
    "opened",
    "escalated",
    "updated",
    "resolved",
    "false_positive",
    # upstream mitigation (control.bgp): a FlowSpec rule / RTBH route announced, withdrawn
    "upstream_announced",
    "upstream_withdrawn",
]


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: IncidentEventKind
    workspace_id: int
    incident_uuid: str
    # The incident as the REST API shows it (GET /api/v1/incidents/{uuid} "incident" object).
    incident: Incident
    # upstream_* events: the announcement (the incident lists it under `announcements`)
    announcement_id: int | None = None


Subscriber = Callable[[IncidentEvent], Awaitable[None]]


class IncidentEvents:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    async def publish(self, event: IncidentEvent) -> None:
        for fn in self._subscribers:
            await fn(event)

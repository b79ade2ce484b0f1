"""The live data hub: what the Agent API ingests, fanned out in memory to open pages.

One publish per metrics post or incident change; each event is encoded once and the same
bytes are queued for every subscriber of its topic, so 50 viewers of one node cost 50
queue appends, not 50 database reads. Topics: a workspace (the overview: every node's
points and the incident changes) and a node of a workspace (its points).

A subscriber's queue is bounded: a page that stops reading loses its oldest events rather
than growing the server's memory. Every point also goes into the workspace's running
per-second totals (`totals`), which the overview's stream sends when it opens.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar.datastructures import State

from control.dashboard.totals import WorkspaceTotals
from ftcontract import agent_api

QUEUE_EVENTS = 300  # five minutes of one point per second, plus incident changes

LiveKind = Literal["point", "incident"]


class LivePoint(msgspec.Struct, kw_only=True):
    """One second of a node's traffic, as pages draw it."""

    node: str
    ts: float
    pps: float
    bps: float
    dropped_pps: float
    dropped_bps: float
    protocols: dict[str, float]
    attack: bool
    baseline_avg_pps: float | None
    baseline_p95_pps: float | None


class LiveIncident(msgspec.Struct, kw_only=True):
    kind: str  # opened, escalated, updated, resolved, false_positive
    uuid: str
    incident: Any  # the incident as the REST API shows it


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: LiveKind
    data: str  # JSON, encoded once for every subscriber


Topic = tuple[int, str | None]  # (workspace id, node uuid or None for the whole workspace)


class LiveHub:
    def __init__(self, queue_events: int = QUEUE_EVENTS) -> None:
        self._queue_events = queue_events
        self._topics: dict[Topic, set[asyncio.Queue[LiveEvent]]] = defaultdict(set)
        self.published = 0  # events published (each counted once, whatever the fan-out)
        # Set when the server is asked to stop: open streams end themselves (a live stream
        # never ends by itself, and uvicorn waits for open responses before exiting).
        self.closing = False
        self.totals = WorkspaceTotals()

    def subscribers(self, workspace_id: int, node_uuid: str | None = None) -> int:
        return len(self._topics.get((workspace_id, node_uuid), ()))

    @contextmanager
    def subscribe(
        self, workspace_id: int, node_uuid: str | None = None
    ) -> Iterator[asyncio.Queue[LiveEvent]]:
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(self._queue_events)
        topic = (workspace_id, node_uuid)
        self._topics[topic].add(queue)
        try:
            yield queue
        finally:
            queues = self._topics.get(topic)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._topics[topic]

    def _fan_out(self, topic: Topic, event: LiveEvent) -> None:
        for queue in self._topics.get(topic, ()):
            if queue.full():  # a reader that fell behind loses its oldest event
                queue.get_nowait()
            queue.put_nowait(event)

    def publish_points(
        self, workspace_id: int, node_uuid: str, points: Iterable[agent_api.MetricPoint]
    ) -> None:
        points = list(points)
        # Kept whoever watches: a page opened later draws the last minutes from these.
        self.totals.add(workspace_id, node_uuid, points)
        if (workspace_id, node_uuid) not in self._topics and (
            workspace_id,
            None,
        ) not in self._topics:
            return  # nobody watching: nothing to encode
        for p in sorted(points, key=lambda p: p.ts):
            live = LivePoint(
                node=node_uuid,
                ts=p.ts,
                pps=p.pps,
                bps=p.bps,
                dropped_pps=p.dropped_pps,
                dropped_bps=p.dropped_bps,
                protocols=dict(p.protocols),
                attack=p.attack,
                baseline_avg_pps=p.baseline_avg_pps,
                baseline_p95_pps=p.baseline_p95_pps,
            )
            event = LiveEvent("point", msgspec.json.encode(live).decode())
            self.published += 1
            self._fan_out((workspace_id, node_uuid), event)
            self._fan_out((workspace_id, None), event)

    def publish_incident(self, workspace_id: int, kind: str, uuid: str, incident: Any) -> None:
        if (workspace_id, None) not in self._topics:
            return
        live = LiveIncident(kind=kind, uuid=uuid, incident=msgspec.to_builtins(incident))
        self.published += 1
        self._fan_out(
            (workspace_id, None), LiveEvent("incident", msgspec.json.encode(live).decode())
        )


def live_hub_of(state: State) -> LiveHub:
    hub: LiveHub = state.live_hub
    return hub

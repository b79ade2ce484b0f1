"""Fixtures for notification tests: a real SQLite store, the incident service that
publishes events, the notification service with short back-off, loopback receivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from control.channels import service as channel_store
from control.core.db import open_db
from control.incidents.event_bus import IncidentEvents
from control.incidents.schemas import Incident, TopSource
from control.incidents.service import IncidentReport, IncidentService
from control.nodes.service import NodeFields, NodeStatusPolicy, create_node
from control.notify.retry import RetryPolicy
from control.notify.service import NotificationService, NotifySettings
from control.workspace.service import create_workspace
from lab import notify_receivers as rx
from lab.notify_channels import RECEIVERS

FAST = NotifySettings(
    retry=RetryPolicy(base_delay_sec=0.1, max_delay_sec=0.4, max_attempts=4, jitter=0.5),
    http_timeout_sec=0.5,
    smtp_timeout_sec=2.0,
    attempt_timeout_sec=3.0,
    rescan_interval_sec=0.2,
)


@dataclass
class Store:
    path: Path
    db: aiosqlite.Connection
    events: IncidentEvents
    incidents: IncidentService
    workspace_id: int
    node_uuid: str
    node_name: str
    services: list[NotificationService] = field(default_factory=list)

    async def channel(self, type_: str, config: dict[str, Any], name: str = "ch") -> int:
        created = await channel_store.create_channel(
            self.db, self.workspace_id, name, type_, config
        )
        return created.id

    async def service(self, settings: NotifySettings = FAST) -> NotificationService:
        svc = NotificationService(self.db, self.events, settings)
        self.services.append(svc)
        await svc.start()
        return svc

    async def open_incident(self, severity: str = "critical", **extra: Any) -> Incident:
        report = IncidentReport(
            family="udp_flood",
            severity=severity,  # type: ignore[arg-type]
            started_at=time.time() - 65,
            peak_pps=2_450_000,
            peak_bps=1.2e9,
            protocols={"udp": 97.5, "tcp": 2.5},
            top_sources=[
                TopSource(ip="198.51.100.7", pps=900_000, bps=4e8),
                TopSource(ip="198.51.100.8", pps=800_000, bps=4e8),
                TopSource(ip="203.0.113.99", pps=700_000, bps=4e8),
            ],
            **extra,
        )
        return await self.incidents.open(self.workspace_id, self.node_uuid, report)

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.db.execute(sql, args) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def deliveries(self, channel_id: int) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT * FROM notification_deliveries WHERE channel_id = ? ORDER BY id", channel_id
        )

    async def attempts(self, channel_id: int) -> list[dict[str, Any]]:
        return await self.rows(
            "SELECT * FROM notification_attempts WHERE channel_id = ? ORDER BY id", channel_id
        )

    async def wait_until(
        self, check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + within
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or check}")
            await asyncio.sleep(0.02)

    async def wait_settled(self, channel_id: int, count: int, within: float = 10.0) -> None:
        """Wait until the channel has `count` deliveries and none is pending."""

        async def settled() -> bool:
            rows = await self.deliveries(channel_id)
            return len(rows) >= count and all(r["status"] != "pending" for r in rows)

        await self.wait_until(settled, within, f"{count} settled deliveries")


async def _make_store(path: Path) -> Store:
    db = await open_db(path)
    events = IncidentEvents()
    workspace_id, _ = await create_workspace(db, "acme", "pro")
    node, _ = await create_node(
        db,
        workspace_id,
        NodeFields.validated(name="edge-fra-1", ip="203.0.113.10"),
        NodeStatusPolicy(),
    )
    return Store(
        path=path,
        db=db,
        events=events,
        incidents=IncidentService(db, events),
        workspace_id=workspace_id,
        node_uuid=node.uuid,
        node_name=node.name,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await _make_store(tmp_path / "control.core.db")
    yield s
    for svc in s.services:
        await svc.stop()
    await s.db.close()


@pytest.fixture
def receivers() -> Iterator[Callable[[str], rx.Receiver]]:
    made: list[rx.Receiver] = []

    def make(service: str) -> rx.Receiver:
        receiver = RECEIVERS[service]()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()

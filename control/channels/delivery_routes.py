"""REST API v1: send a test message through a channel, and list a channel's delivery attempts.

Both are scoped to the caller's workspace: another workspace's channel id is a 404, the
same answer as an id that does not exist. The notification service lives on
`app.state.notifications` (constructed and started in the app's lifespan).
"""

from __future__ import annotations

from typing import Literal

import aiosqlite
import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromQuery

from control.core import clock, validation
from control.core.api_types import RowId
from control.core.deps import CallerDep, Db
from control.core.errors import NotFound, NotificationsUnavailable
from control.notify import store
from control.notify.service import NotificationService
from control.workspace.service import Caller


class TestDelivery(msgspec.Struct, kw_only=True):
    id: int  # the delivery record; its one attempt is listed by GET .../deliveries
    status: Literal["delivered", "failed"]
    http_status: int | None
    error: str | None
    duration_ms: float
    attempted_at: str


class TestResponse(msgspec.Struct, kw_only=True):
    ok: bool
    delivery: TestDelivery


class DeliveryAttempt(msgspec.Struct, kw_only=True):
    id: int
    delivery_id: int
    # opened | escalated | resolved | false_positive | test | upstream_announced |
    # upstream_withdrawn
    event: str
    incident_uuid: str | None
    attempt: int  # 1 for a delivery's first try
    attempted_at: str
    outcome: store.AttemptOutcome
    http_status: int | None  # null for email and for network errors
    error: str | None
    duration_ms: float
    retry_in_sec: float | None  # wait chosen before the next try (outcome = retry)
    delivery_status: store.DeliveryStatus


class DeliveryList(msgspec.Struct, kw_only=True):
    ok: bool
    deliveries: list[DeliveryAttempt]
    total: int
    limit: int
    offset: int
    pending: int  # deliveries of this channel still waiting for a (next) attempt


def _service(state: State) -> NotificationService:
    service = state.get("notifications")
    if not isinstance(service, NotificationService) or not service.running:
        raise NotificationsUnavailable("notification service is not running")
    return service


async def _channel(db: aiosqlite.Connection, caller: Caller, channel_id: int) -> store.ChannelRow:
    channel = await store.get_channel(db, channel_id, caller.workspace_id)
    if channel is None:
        raise NotFound("channel not found")
    return channel


class ChannelDeliveryController(Controller):
    path = "/channels"
    tags = ["channels"]

    @post(
        "/{channel_id:int}/test",
        status_code=200,
        summary="Send a test message through a channel now (one attempt, recorded)",
    )
    async def send_test(
        self, channel_id: RowId, caller: CallerDep, db: Db, state: State
    ) -> TestResponse:
        channel = await _channel(db, caller, channel_id)
        result = await _service(state).send_test(channel)
        return TestResponse(
            ok=True,
            delivery=TestDelivery(
                id=result.delivery_id,
                status="delivered" if result.status == "delivered" else "failed",
                http_status=result.http_status,
                error=result.error,
                duration_ms=round(result.duration_ms, 1),
                attempted_at=clock.iso(result.attempted_at) or "",
            ),
        )

    @get("/{channel_id:int}/deliveries", summary="A channel's delivery attempts, newest first")
    async def list_deliveries(
        self,
        channel_id: RowId,
        caller: CallerDep,
        db: Db,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> DeliveryList:
        validation.page(limit, offset)
        channel = await _channel(db, caller, channel_id)
        rows, total = await store.list_attempts(db, channel.id, limit=limit, offset=offset)
        attempts = [
            DeliveryAttempt(
                id=row.id,
                delivery_id=row.delivery_id,
                event=row.event_kind,
                incident_uuid=row.incident_uuid,
                attempt=row.attempt,
                attempted_at=clock.iso(row.attempted_at) or "",
                outcome=row.outcome,
                http_status=row.http_status,
                error=row.error,
                duration_ms=round(row.duration_ms, 1),
                retry_in_sec=row.retry_in_sec,
                delivery_status=row.status,
            )
            for row in rows
        ]
        return DeliveryList(
            ok=True,
            deliveries=attempts,
            total=total,
            limit=limit,
            offset=offset,
            pending=await store.pending_count(db, channel.id),
        )

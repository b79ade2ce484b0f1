"""SQL for notification deliveries and attempts (tables from 0002_notifications.sql).

Every query that takes a channel also takes the workspace, so the API cannot reach
another workspace's rows. Multi-statement writes go through `control.core.db.transaction`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite
import msgspec

from control.core.db import transaction
from control.incidents.schemas import Incident
from control.notify.outcome import Outcome


@dataclass(frozen=True, slots=True)
class ChannelRow:
    id: int
    workspace_id: int
    name: str
    type: str
    config: dict[str, Any]
    enabled: bool


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    channel_id: int
    workspace_id: int
    event_key: str
    event_kind: str
    incident_uuid: str | None
    incident: Incident
    status: str
    attempts: int
    next_attempt_at: float


@dataclass(frozen=True, slots=True)
class NewDelivery:
    channel_id: int
    event_key: str
    event_kind: str
    incident_uuid: str | None
    incident: Incident


def _channel(row: sqlite3.Row) -> ChannelRow:
    return ChannelRow(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        type=row["type"],
        config=msgspec.json.decode(row["config"]),
        enabled=bool(row["enabled"]),
    )


def _delivery(row: sqlite3.Row) -> DeliveryRow:
    return DeliveryRow(
        id=row["id"],
        channel_id=row["channel_id"],
        workspace_id=row["workspace_id"],
        event_key=row["event_key"],
        event_kind=row["event_kind"],
        incident_uuid=row["incident_uuid"],
        incident=msgspec.json.decode(row["incident"], type=Incident),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
    )


async def enabled_channels(db: aiosqlite.Connection, workspace_id: int) -> list[ChannelRow]:
    async with db.execute(
        "SELECT id, workspace_id, name, type, config, enabled FROM channels"
        " WHERE workspace_id = ? AND enabled = 1 ORDER BY id",
        (workspace_id,),
    ) as cur:
        return [_channel(row) for row in await cur.fetchall()]


async def get_channel(
    db: aiosqlite.Connection, channel_id: int, workspace_id: int | None = None
) -> ChannelRow | None:
    sql = "SELECT id, workspace_id, name, type, config, enabled FROM channels WHERE id = ?"
    params: tuple[int, ...] = (channel_id,)
    if workspace_id is not None:
        sql += " AND workspace_id = ?"
        params = (channel_id, workspace_id)
    async with db.execute(sql, params) as cur:
        row = await cur.fetchone()
    return _channel(row) if row else None


async def enqueue(
    db: aiosqlite.Connection, workspace_id: int, items: list[NewDelivery], now: float
) -> list[int]:
    """Insert deliveries, skipping any (channel, event) already queued; returns channel ids
    that got a new row."""
    queued: list[int] = []
    async with transaction(db):
        for item in items:
            cur = await db.execute(
                "INSERT OR IGNORE INTO notification_deliveries (channel_id, workspace_id,"
                " event_key, event_kind, incident_uuid, incident, status, attempts,"
                " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                (
                    item.channel_id,
                    workspace_id,
                    item.event_key,
                    item.event_kind,
                    item.incident_uuid,
                    msgspec.json.encode(item.incident).decode(),
                    now,
                    now,
                ),
            )
            if cur.rowcount == 1:
                queued.append(item.channel_id)
    return queued


async def channels_with_pending(db: aiosqlite.Connection) -> list[int]:
    async with db.execute(
        "SELECT DISTINCT channel_id FROM notification_deliveries WHERE status = 'pending'"
    ) as cur:
        return [int(row[0]) for row in await cur.fetchall()]


async def next_pending(db: aiosqlite.Connection, channel_id: int) -> DeliveryRow | None:
    """The channel's oldest pending delivery: a channel's events go out in order."""
    async with db.execute(
        "SELECT id, channel_id, workspace_id, event_key, event_kind, incident_uuid, incident,"
        " status, attempts, next_attempt_at FROM notification_deliveries"
        " WHERE channel_id = ? AND status = 'pending' ORDER BY id LIMIT 1",
        (channel_id,),
    ) as cur:
        row = await cur.fetchone()
    return _delivery(row) if row else None


async def record_attempt(
    db: aiosqlite.Connection,
    delivery: DeliveryRow,
    outcome: Outcome,
    *,
    attempted_at: float,
    duration_ms: float,
    retry_in: float | None,
    now: float,
) -> str:
    """Write the attempt and move the delivery on, atomically. Returns the attempt outcome."""
    attempt = delivery.attempts + 1
    if outcome.delivered:
        result = "delivered"
    elif retry_in is not None:
        result = "retry"
    else:
        result = "failed"
    async with transaction(db):
        await db.execute(
            "INSERT INTO notification_attempts (delivery_id, channel_id, attempt, attempted_at,"
            " duration_ms, outcome, http_status, error, retry_in_sec)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                delivery.id,
                delivery.channel_id,
                attempt,
                attempted_at,
                duration_ms,
                result,
                outcome.http_status,
                outcome.error,
                retry_in,
            ),
        )
        if retry_in is not None and result == "retry":
            await db.execute(
                "UPDATE notification_deliveries SET attempts = ?, next_attempt_at = ?,"
                " last_error = ? WHERE id = ?",
                (attempt, now + retry_in, outcome.error, delivery.id),
            )
        else:
            await db.execute(
                "UPDATE notification_deliveries SET attempts = ?, status = ?, finished_at = ?,"
                " last_error = ? WHERE id = ?",
                (attempt, result, now, outcome.error, delivery.id),
            )
    return result


async def fail_pending(
    db: aiosqlite.Connection, delivery: DeliveryRow, reason: str, now: float
) -> None:
    """Give up on a delivery without an attempt (channel disabled or its config unusable)."""
    async with transaction(db):
        await db.execute(
            "UPDATE notification_deliveries SET status = 'failed', finished_at = ?,"
            " last_error = ? WHERE id = ? AND status = 'pending'",
            (now, reason, delivery.id),
        )


@dataclass(frozen=True, slots=True)
class TestResult:
    delivery_id: int
    attempt_id: int
    status: str  # delivered | failed
    http_status: int | None
    error: str | None
    duration_ms: float
    attempted_at: float


async def record_test(
    db: aiosqlite.Connection,
    channel: ChannelRow,
    *,
    event_key: str,
    incident: dict[str, str | float | int],
    outcome: Outcome,
    attempted_at: float,
    duration_ms: float,
    now: float,
) -> TestResult:
    """A test send is one finished delivery with one attempt, written after the fact (it
    is never pending, so no worker can pick it up and send it again)."""
    status = "delivered" if outcome.delivered else "failed"
    async with transaction(db):
        cur = await db.execute(
            "INSERT INTO notification_deliveries (channel_id, workspace_id, event_key,"
            " event_kind, incident_uuid, incident, status, attempts, next_attempt_at,"
            " created_at, finished_at, last_error)"
            " VALUES (?, ?, ?, 'test', NULL, ?, ?, 1, ?, ?, ?, ?)",
            (
                channel.id,
                channel.workspace_id,
                event_key,
                msgspec.json.encode(incident).decode(),
                status,
                attempted_at,
                attempted_at,
                now,
                outcome.error,
            ),
        )
        delivery_id = int(cur.lastrowid or 0)
        cur = await db.execute(
            "INSERT INTO notification_attempts (delivery_id, channel_id, attempt, attempted_at,"
            " duration_ms, outcome, http_status, error, retry_in_sec)"
            " VALUES (?, ?, 1, ?, ?, ?, ?, ?, NULL)",
            (
                delivery_id,
                channel.id,
                attempted_at,
                duration_ms,
                status,
                outcome.http_status,
                outcome.error,
            ),
        )
        attempt_id = int(cur.lastrowid or 0)
    return TestResult(
        delivery_id=delivery_id,
        attempt_id=attempt_id,
        status=status,
        http_status=outcome.http_status,
        error=outcome.error,
        duration_ms=duration_ms,
        attempted_at=attempted_at,
    )


# The CHECK constraints of 0002_notifications.sql.
AttemptOutcome = Literal["delivered", "retry", "failed"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One delivery attempt with the delivery it belongs to (columns of list_attempts)."""

    id: int
    delivery_id: int
    attempt: int
    attempted_at: float
    duration_ms: float
    outcome: AttemptOutcome
    http_status: int | None
    error: str | None
    retry_in_sec: float | None
    event_kind: str
    incident_uuid: str | None
    status: DeliveryStatus


async def list_attempts(
    db: aiosqlite.Connection, channel_id: int, *, limit: int, offset: int
) -> tuple[list[AttemptRow], int]:
    """A channel's attempts, newest first, with the delivery each belongs to."""
    async with db.execute(
        "SELECT COUNT(*) FROM notification_attempts WHERE channel_id = ?", (channel_id,)
    ) as cur:
        row = await cur.fetchone()
    total = int(row[0]) if row else 0
    async with db.execute(
        "SELECT a.id, a.delivery_id, a.attempt, a.attempted_at, a.duration_ms, a.outcome,"
        " a.http_status, a.error, a.retry_in_sec, d.event_kind, d.incident_uuid, d.status"
        " FROM notification_attempts a JOIN notification_deliveries d ON d.id = a.delivery_id"
        " WHERE a.channel_id = ? ORDER BY a.attempted_at DESC, a.id DESC LIMIT ? OFFSET ?",
        (channel_id, limit, offset),
    ) as cur:
        rows = await cur.fetchall()
    return [AttemptRow(**dict(row)) for row in rows], total


async def pending_count(db: aiosqlite.Connection, channel_id: int) -> int:
    async with db.execute(
        "SELECT COUNT(*) FROM notification_deliveries WHERE channel_id = ? AND status = 'pending'",
        (channel_id,),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0

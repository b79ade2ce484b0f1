"""Notification channels of a workspace: create (config validated per type), list, delete.

Configs are validated and normalised by `control.notify.config`; every read returns them
through its `mask_config`, so no response ever carries a channel's secrets.
"""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from control.channels.schemas import Channel
from control.core import clock, validation
from control.core.db import transaction
from control.core.errors import InvalidValue, NotFound
from control.notify.config import ChannelConfigError, mask_config, validate_config


def _channel_from_row(row: aiosqlite.Row) -> Channel:
    return Channel(
        id=row["id"],
        name=row["name"],
        type=row["type"],
        config=mask_config(row["type"], json.loads(row["config"])),
        enabled=bool(row["enabled"]),
        created_at=clock.iso(row["created_at"]) or "",
    )


async def create_channel(
    db: aiosqlite.Connection, workspace_id: int, name: str, type_: str, config: dict[str, Any]
) -> Channel:
    name = validation.required_text("name", name, max_len=validation.NAME_MAX)
    try:
        normalised = validate_config(type_, config)
    except ChannelConfigError as exc:
        raise InvalidValue(exc.field, exc.reason) from None
    async with transaction(db):
        cur = await db.execute(
            "INSERT INTO channels (workspace_id, name, type, config, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (workspace_id, name, type_, json.dumps(normalised), clock.now()),
        )
        channel_id = cur.lastrowid
    assert channel_id is not None
    return await get_channel(db, workspace_id, channel_id)


async def get_channel(db: aiosqlite.Connection, workspace_id: int, channel_id: int) -> Channel:
    async with db.execute(
        "SELECT * FROM channels WHERE workspace_id = ? AND id = ?", (workspace_id, channel_id)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound("channel not found")
    return _channel_from_row(row)


async def list_channels(db: aiosqlite.Connection, workspace_id: int) -> list[Channel]:
    async with db.execute(
        "SELECT * FROM channels WHERE workspace_id = ? ORDER BY id", (workspace_id,)
    ) as cur:
        rows = await cur.fetchall()
    return [_channel_from_row(r) for r in rows]


async def delete_channel(db: aiosqlite.Connection, workspace_id: int, channel_id: int) -> None:
    """Permanent delete (its delivery records go with it, by foreign key cascade)."""
    async with transaction(db):
        cur = await db.execute(
            "DELETE FROM channels WHERE workspace_id = ? AND id = ?", (workspace_id, channel_id)
        )
        if cur.rowcount == 0:
            raise NotFound("channel not found")

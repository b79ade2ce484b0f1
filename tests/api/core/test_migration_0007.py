"""Migration 0007 rebuilds the notification tables (a CHECK cannot be altered in SQLite):
every delivery and attempt is kept, and the attempts still cascade with their delivery."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from control.core.db import apply_migrations, bundled_migrations


async def test_0007_keeps_deliveries_and_attempts(tmp_path: Path) -> None:
    db = await aiosqlite.connect(str(tmp_path / "old.db"), isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA foreign_keys = ON")
        migrations = bundled_migrations()
        assert await apply_migrations(db, migrations[:6]) == 6
        await db.execute(
            "INSERT INTO workspaces (name, plan, node_limit, created_at) VALUES ('a', 'free', 1, 0)"
        )
        await db.execute(
            "INSERT INTO channels (workspace_id, name, type, config, created_at) "
            "VALUES (1, 'c', 'webhook', '{}', 0)"
        )
        await db.execute(
            "INSERT INTO notification_deliveries (channel_id, workspace_id, event_key, "
            "event_kind, incident, next_attempt_at, created_at) "
            "VALUES (1, 1, 'u:opened', 'opened', '{}', 5, 4)"
        )
        await db.execute(
            "INSERT INTO notification_attempts (delivery_id, channel_id, attempt, attempted_at,"
            " duration_ms, outcome) VALUES (1, 1, 1, 6, 12.5, 'retry')"
        )
        before = [
            [tuple(r) for r in await db.execute_fetchall(f"SELECT * FROM {t}")]  # noqa: S608
            for t in ("notification_deliveries", "notification_attempts")
        ]
        assert await apply_migrations(db, migrations[:7]) == 7  # up to 0007 only
        after = [
            [tuple(r) for r in await db.execute_fetchall(f"SELECT * FROM {t}")]  # noqa: S608
            for t in ("notification_deliveries", "notification_attempts")
        ]
        assert after == before and len(after[1]) == 1
        assert list(await db.execute_fetchall("PRAGMA foreign_key_check")) == []
        await db.execute(
            "INSERT INTO notification_deliveries (channel_id, workspace_id, event_key, "
            "event_kind, incident, next_attempt_at, created_at) "
            "VALUES (1, 1, 'u:upstream_announced:1', 'upstream_announced', '{}', 5, 4)"
        )
        await db.execute("DELETE FROM notification_deliveries WHERE id = 1")
        rows = await db.execute_fetchall("SELECT count(*) FROM notification_attempts")
        assert next(iter(rows))[0] == 0  # ON DELETE CASCADE still points at the new table
    finally:
        await db.close()

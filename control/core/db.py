"""The control plane's SQLite store: open a connection and bring its schema up to date.

One aiosqlite connection serves the whole app. Writers that need more than one statement
to be atomic use `transaction(db)`, which serialises them on a per-connection lock:
an aiosqlite connection is one SQLite connection, so two coroutines interleaving their
BEGIN/COMMIT on it would otherwise commit each other's half-done work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiosqlite

log = logging.getLogger("ftcontrol.db")

BUSY_TIMEOUT_MS = 5000
# A value bound to a statement parameter (what sqlite3 adapts without converters).
SqlValue = str | int | float | bytes | None
# Named parameters, or column -> new value of an UPDATE built from fixed column names.
SqlParams = dict[str, SqlValue]
# A migration that rebuilds a referenced table says so on a line of its own; it runs with
# foreign keys off and must leave every reference intact (checked before it commits).
REBUILDS_TABLES = "-- ftcontrol: rebuilds referenced tables"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_write_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def bundled_migrations() -> list[Migration]:
    """Every `control/migrations/NNNN_name.sql`, in version order; versions must be 1..N."""
    found: list[Migration] = []
    for entry in resources.files("control.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration versions must be contiguous: {migration.name}")
    return found


async def apply_migrations(db: aiosqlite.Connection, migrations: list[Migration]) -> int:
    """Apply every migration newer than PRAGMA user_version, each in its own transaction.

    Returns the schema version afterwards. user_version is set inside the same
    transaction, so a failed migration leaves both schema and version untouched.
    """
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    for migration in migrations:
        if migration.version <= current:
            continue
        rebuilds = REBUILDS_TABLES in migration.sql
        if rebuilds:
            # SQLite's own procedure for changing a table that others reference: with
            # foreign keys on, dropping the old copy would cascade into the children.
            # The pragma is a no-op inside a transaction, so it is set around it.
            await db.execute("PRAGMA foreign_keys = OFF")
        try:
            async with transaction(db):
                # executescript would COMMIT first; run the statements one by one instead.
                for statement in _split_sql(migration.sql):
                    await db.execute(statement)
                if rebuilds:
                    async with db.execute("PRAGMA foreign_key_check") as cur:
                        broken = await cur.fetchone()
                    if broken is not None:
                        raise RuntimeError(
                            f"{migration.name} leaves broken references: {tuple(broken)}"
                        )
                await db.execute(f"PRAGMA user_version = {migration.version}")
        finally:
            if rebuilds:
                await db.execute("PRAGMA foreign_keys = ON")
        current = migration.version
    return current


def _split_sql(script: str) -> list[str]:
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip().strip(";").strip() and not _only_comments(buffer):
        raise RuntimeError(f"incomplete SQL statement in migration: {buffer[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not ln.strip() or ln.strip().startswith("--") for ln in text.splitlines())


def _owner_only(path: str | Path) -> None:
    """The store holds channel secrets (SMTP passwords, webhook secrets, bot tokens) in
    clear, as sending needs them: the file is the owner's alone (0600) whatever the umask.
    SQLite gives its -wal and -shm files the database file's mode."""
    if str(path) in ("", ":memory:") or str(path).startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("%s was readable by others (mode %o): now 0600", path, mode)
    except OSError as exc:  # not ours to change (read-only mount ...): SQLite will say
        log.warning("cannot restrict the mode of %s: %s", path, exc)


async def open_db(path: str | Path) -> aiosqlite.Connection:
    """Open (creating if needed) the database at `path`, configured and migrated.

    WAL journal, foreign keys on, a busy timeout, rows as sqlite3.Row, autocommit mode
    (isolation_level=None): multi-statement writes go through `transaction(db)`.
    """
    _owner_only(path)
    db = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA synchronous = NORMAL")
        await apply_migrations(db, bundled_migrations())
    except BaseException:
        await db.close()
        raise
    return db


def write_lock(db: aiosqlite.Connection) -> asyncio.Lock:
    lock = _write_locks.get(db)
    if lock is None:
        lock = _write_locks[db] = asyncio.Lock()
    return lock


@asynccontextmanager
async def transaction(db: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception), one writer at a time."""
    async with write_lock(db):
        await db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            await db.rollback()
            raise
        await db.commit()

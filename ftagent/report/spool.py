"""A bounded, ordered, on-disk queue of reports waiting for the control plane.

SQLite (stdlib) in the agent's state directory: appends and removals are transactions, so
a crash or power cut loses nothing that was appended, and order is the AUTOINCREMENT seq.
Only the reporter's sender thread touches it.

Bound: droppable entries (metric points) may take at most `max_droppable_bytes` of
payload. When an append goes over, the oldest droppable entries are deleted first (never
the ones being appended).
Incident events are never droppable and never deleted until the control plane has
accepted them.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    body BLOB NOT NULL,
    droppable INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_droppable ON spool (droppable, seq);
CREATE TABLE IF NOT EXISTS spool_stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Pending:
    """A report to send: `kind` says how, `path` is relative to /api/v1/agent/."""

    kind: str
    path: str
    body: bytes
    droppable: bool


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    kind: str
    path: str
    body: bytes
    droppable: bool


class Spool:
    def __init__(self, path: str | Path, max_droppable_bytes: int = 50 * 1024 * 1024) -> None:
        if max_droppable_bytes < 0:
            raise ValueError("max_droppable_bytes must not be negative")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_droppable_bytes = max_droppable_bytes
        # check_same_thread=False: created by the agent's main thread, used by the sender.
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN droppable = 1 THEN length(body) END), 0) "
            "FROM spool"
        ).fetchone()
        self._total = int(row[0])
        self._droppable_bytes = int(row[1])

    def __len__(self) -> int:
        return self._total

    @property
    def droppable_bytes(self) -> int:
        return self._droppable_bytes

    @property
    def dropped_total(self) -> int:
        """Droppable entries deleted to keep the bound, over the spool file's lifetime."""
        row = self._db.execute("SELECT value FROM spool_stats WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def append(self, items: list[Pending]) -> int:
        """Store `items` in order; returns how many old droppable entries made room."""
        if not items:
            return 0
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # What this call appends is never dropped by it (a bound of 0 keeps only the
            # newest points: nothing of an outage, but a live agent still sends each one).
            (before,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM spool").fetchone()
            self._db.executemany(
                "INSERT INTO spool (kind, path, body, droppable, created) VALUES (?, ?, ?, ?, ?)",
                [(i.kind, i.path, i.body, int(i.droppable), now) for i in items],
            )
            added_bytes = sum(len(i.body) for i in items if i.droppable)
            excess = self._droppable_bytes + added_bytes - self.max_droppable_bytes
            dropped = freed = 0
            if excess > 0:
                last_seq = 0
                for seq, size in self._db.execute(
                    "SELECT seq, length(body) FROM spool WHERE droppable = 1 AND seq <= ? "
                    "ORDER BY seq",
                    (before,),
                ):
                    if freed >= excess:
                        break
                    freed += int(size)
                    last_seq = int(seq)
                    dropped += 1
                self._db.execute("DELETE FROM spool WHERE droppable = 1 AND seq <= ?", (last_seq,))
                self._db.execute(
                    "INSERT INTO spool_stats (name, value) VALUES ('dropped', ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (dropped,),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._droppable_bytes += added_bytes - freed
        self._total += len(items) - dropped
        return dropped

    def has_undroppable(self) -> bool:
        """True if an entry that must go out at once (not a metric point) is waiting."""
        return bool(self._total) and (
            self._db.execute("SELECT 1 FROM spool WHERE droppable = 0 LIMIT 1").fetchone()
            is not None
        )

    def peek(self, limit: int) -> list[SpoolEntry]:
        """The oldest `limit` entries, in order, without removing them."""
        rows = self._db.execute(
            "SELECT seq, kind, path, body, droppable FROM spool ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [SpoolEntry(r[0], r[1], r[2], bytes(r[3]), bool(r[4])) for r in rows]

    def remove(self, entries: list[SpoolEntry]) -> None:
        """Delete entries the control plane has accepted (or rejected for good)."""
        if not entries:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            removed = removed_bytes = 0
            for e in entries:
                n = self._db.execute("DELETE FROM spool WHERE seq = ?", (e.seq,)).rowcount
                removed += n
                removed_bytes += len(e.body) if n and e.droppable else 0
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._droppable_bytes -= removed_bytes
        self._total -= removed

    def close(self) -> None:
        self._db.close()

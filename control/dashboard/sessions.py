"""Server-side dashboard sessions in SQLite (a restart keeps them).

The cookie carries a 256-bit random session id; the store keeps only its SHA-256 digest.
A session ends after `idle_s` without a request or `absolute_s` after sign-in, whichever
comes first. Signing in always makes a new session (and ends the one the browser had).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

import aiosqlite

from control.core import clock
from control.core.db import transaction
from control.core.security import hash_secret, new_secret
from control.dashboard.settings import TOUCH_EVERY_S, DashboardSettings
from control.dashboard.users import DashUser, parse_role


@dataclass(frozen=True, slots=True)
class DashSession:
    session_id: int
    user: DashUser
    csrf_token: str

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.csrf_token.encode()
        )


async def start_session(
    db: aiosqlite.Connection, user_id: int, previous_token: str | None
) -> tuple[str, str]:
    """A new session for the user: (session token for the cookie, CSRF token)."""
    token = new_secret()
    csrf = secrets.token_urlsafe(32)
    now = clock.now()
    async with transaction(db):
        if previous_token:
            await db.execute(
                "DELETE FROM dash_sessions WHERE token_hash = ?", (hash_secret(previous_token),)
            )
        await db.execute(
            "INSERT INTO dash_sessions (token_hash, user_id, csrf_token, created_at, last_seen)"
            " VALUES (?, ?, ?, ?, ?)",
            (hash_secret(token), user_id, csrf, now, now),
        )
    return token, csrf


async def find_session(
    db: aiosqlite.Connection, token: str, settings: DashboardSettings
) -> DashSession | None:
    """The live session of a cookie's token; an expired one is deleted and None returned."""
    digest = hash_secret(token)
    async with db.execute(
        """SELECT s.id, s.csrf_token, s.created_at, s.last_seen, s.token_hash,
                  u.id AS user_id, u.workspace_id, u.email, u.role, w.name
           FROM dash_sessions s
           JOIN dash_users u ON u.id = s.user_id
           JOIN workspaces w ON w.id = u.workspace_id
           WHERE s.token_hash = ?""",
        (digest,),
    ) as cur:
        row = await cur.fetchone()
    if row is None or not hmac.compare_digest(digest, str(row["token_hash"])):
        return None
    now = clock.now()
    if now - row["last_seen"] > settings.idle_s or now - row["created_at"] > settings.absolute_s:
        async with transaction(db):
            await db.execute("DELETE FROM dash_sessions WHERE id = ?", (row["id"],))
        return None
    if now - row["last_seen"] > TOUCH_EVERY_S:
        async with transaction(db):
            await db.execute(
                "UPDATE dash_sessions SET last_seen = ? WHERE id = ?", (now, row["id"])
            )
    user = DashUser(
        int(row["user_id"]),
        int(row["workspace_id"]),
        str(row["name"]),
        str(row["email"]),
        parse_role(str(row["role"])),
    )
    return DashSession(int(row["id"]), user, str(row["csrf_token"]))


async def end_session(db: aiosqlite.Connection, session_id: int) -> None:
    async with transaction(db):
        await db.execute("DELETE FROM dash_sessions WHERE id = ?", (session_id,))

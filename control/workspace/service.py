"""Workspaces and their deploy tokens: create, rotate, subscription, authenticate, describe."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from control.core import clock
from control.core.db import transaction
from control.core.errors import Conflict, InvalidValue, NotFound, Unauthorized
from control.core.security import hash_secret, new_secret, secret_matches
from control.workspace.plans import PLAN_NODE_LIMITS, SUBSCRIPTION_STATUSES
from control.workspace.schemas import Workspace


@dataclass(frozen=True, slots=True)
class Caller:
    """The workspace a request acts for (what the auth middleware resolved the token to)."""

    workspace_id: int
    workspace_name: str


async def create_workspace(db: aiosqlite.Connection, name: str, plan: str) -> tuple[int, str]:
    """Create a workspace; returns (id, deploy token). The token is not stored, only its hash."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidValue("name", "1-100 characters")
    if plan not in PLAN_NODE_LIMITS:
        raise InvalidValue("plan", f"one of {', '.join(PLAN_NODE_LIMITS)}")
    token = new_secret()
    now = clock.now()
    async with transaction(db):
        try:
            cur = await db.execute(
                "INSERT INTO workspaces (name, plan, node_limit, created_at) VALUES (?, ?, ?, ?)",
                (name, plan, PLAN_NODE_LIMITS[plan], now),
            )
        except aiosqlite.IntegrityError as exc:
            raise Conflict(f"workspace {name!r} already exists") from exc
        workspace_id = cur.lastrowid
        assert workspace_id is not None
        await db.execute(
            "INSERT INTO tokens (workspace_id, token_hash, created_at) VALUES (?, ?, ?)",
            (workspace_id, hash_secret(token), now),
        )
    return workspace_id, token


async def _workspace_id(db: aiosqlite.Connection, name: str) -> int:
    async with db.execute("SELECT id FROM workspaces WHERE name = ?", (name,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"workspace {name!r} not found")
    return int(row["id"])


async def rotate_token(db: aiosqlite.Connection, name: str) -> str:
    """Revoke every live token of the workspace and issue a new one (returned once)."""
    workspace_id = await _workspace_id(db, name)
    token = new_secret()
    now = clock.now()
    async with transaction(db):
        await db.execute(
            "UPDATE tokens SET revoked_at = ? WHERE workspace_id = ? AND revoked_at IS NULL",
            (now, workspace_id),
        )
        await db.execute(
            "INSERT INTO tokens (workspace_id, token_hash, created_at) VALUES (?, ?, ?)",
            (workspace_id, hash_secret(token), now),
        )
    return token


async def set_subscription(db: aiosqlite.Connection, name: str, status: str) -> None:
    if status not in SUBSCRIPTION_STATUSES:
        raise InvalidValue("status", f"one of {', '.join(SUBSCRIPTION_STATUSES)}")
    workspace_id = await _workspace_id(db, name)
    async with transaction(db):
        await db.execute(
            "UPDATE workspaces SET subscription_status = ? WHERE id = ?", (status, workspace_id)
        )


async def authenticate(db: aiosqlite.Connection, token: str) -> Caller:
    """The workspace of a live deploy token; Unauthorized otherwise."""
    digest = hash_secret(token)
    async with db.execute(
        """SELECT t.token_hash, w.id, w.name FROM tokens t
           JOIN workspaces w ON w.id = t.workspace_id
           WHERE t.token_hash = ? AND t.revoked_at IS NULL""",
        (digest,),
    ) as cur:
        row = await cur.fetchone()
    # The lookup is by digest (equality on a hash leaks nothing usable about the token);
    # the final check is still a constant-time comparison.
    if row is None or not secret_matches(token, row["token_hash"]):
        raise Unauthorized("invalid deploy token")
    return Caller(workspace_id=int(row["id"]), workspace_name=str(row["name"]))


async def describe(db: aiosqlite.Connection, workspace_id: int) -> Workspace:
    async with db.execute(
        """SELECT w.*, (SELECT count(*) FROM nodes n
                        WHERE n.workspace_id = w.id AND n.deleted_at IS NULL) AS node_count
           FROM workspaces w WHERE w.id = ?""",
        (workspace_id,),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound("workspace not found")
    return Workspace(
        name=row["name"],
        plan=row["plan"],
        subscription_status=row["subscription_status"],
        node_count=row["node_count"],
        node_limit=row["node_limit"],
        created_at=clock.iso(row["created_at"]) or "",
    )

"""Dashboard accounts: a user belongs to one workspace as `admin` or `viewer`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, get_args

import aiosqlite
import msgspec

from control.core import clock
from control.core.db import transaction
from control.core.errors import Conflict, InvalidValue, NotFound
from control.dashboard import passwords

Role = Literal["admin", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)
EMAIL_MAX = 254


@dataclass(frozen=True, slots=True)
class DashUser:
    """A signed-in person: who, of which workspace, allowed to do what."""

    user_id: int
    workspace_id: int
    workspace_name: str
    email: str
    role: Role


class UserItem(msgspec.Struct, kw_only=True):
    id: int
    email: str
    role: Role
    created_at: str


def _check_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > EMAIL_MAX or " " in email:
        raise InvalidValue("email", "an e-mail address such as ops@example.org")
    return email


def _check_password(password: str) -> None:
    reason = passwords.check_policy(password)
    if reason:
        raise InvalidValue("password", reason)


def parse_role(role: str) -> Role:
    if role == "admin":
        return "admin"
    if role == "viewer":
        return "viewer"
    raise InvalidValue("role", f"one of {', '.join(ROLES)}")


async def create_user(
    db: aiosqlite.Connection, email: str, workspace_name: str, role: str, password: str
) -> DashUser:
    email = _check_email(email)
    checked_role = parse_role(role)
    _check_password(password)
    async with db.execute("SELECT id FROM workspaces WHERE name = ?", (workspace_name,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"workspace {workspace_name!r} not found")
    workspace_id = int(row["id"])
    # ~50 ms of CPU (more under load): in a thread, outside the write lock, so open pages'
    # live streams and the Agent API are not held up meanwhile.
    digest = await asyncio.to_thread(passwords.hash_password, password)
    async with transaction(db):
        try:
            cur = await db.execute(
                "INSERT INTO dash_users (workspace_id, email, role, password_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (workspace_id, email, checked_role, digest, clock.now()),
            )
        except aiosqlite.IntegrityError as exc:
            raise Conflict(f"user {email!r} already exists") from exc
    assert cur.lastrowid is not None
    return DashUser(cur.lastrowid, workspace_id, workspace_name, email, checked_role)


async def set_password(db: aiosqlite.Connection, email: str, password: str) -> None:
    """New password; every session of the user ends (a changed password signs out)."""
    _check_password(password)
    digest = await asyncio.to_thread(passwords.hash_password, password)
    async with transaction(db):
        cur = await db.execute(
            "UPDATE dash_users SET password_hash = ? WHERE email = ?", (digest, email.strip())
        )
        if cur.rowcount == 0:
            raise NotFound(f"user {email!r} not found")
        await db.execute(
            "DELETE FROM dash_sessions WHERE user_id = (SELECT id FROM dash_users WHERE email = ?)",
            (email.strip(),),
        )


async def delete_user(db: aiosqlite.Connection, email: str) -> None:
    """Remove the user; their sessions go with them (foreign key cascade)."""
    async with transaction(db):
        cur = await db.execute("DELETE FROM dash_users WHERE email = ?", (email.strip(),))
        if cur.rowcount == 0:
            raise NotFound(f"user {email!r} not found")


async def check_login(db: aiosqlite.Connection, email: str, password: str) -> DashUser | None:
    """The user if the password is theirs; None otherwise (unknown e-mail or wrong password,
    indistinguishable, in answer and in time)."""
    async with db.execute(
        """SELECT u.id, u.workspace_id, u.email, u.role, u.password_hash, w.name
           FROM dash_users u JOIN workspaces w ON w.id = u.workspace_id
           WHERE u.email = ?""",
        (email.strip()[:EMAIL_MAX],),
    ) as cur:
        row = await cur.fetchone()
    stored = str(row["password_hash"]) if row is not None else None
    if not await asyncio.to_thread(passwords.verify_password, stored, password) or row is None:
        return None
    return DashUser(
        int(row["id"]),
        int(row["workspace_id"]),
        str(row["name"]),
        str(row["email"]),
        parse_role(str(row["role"])),
    )


def _item(row: aiosqlite.Row) -> UserItem:
    return UserItem(
        id=int(row["id"]),
        email=str(row["email"]),
        role=parse_role(str(row["role"])),
        created_at=clock.iso(row["created_at"]) or "",
    )


async def list_users(db: aiosqlite.Connection, workspace_id: int) -> list[UserItem]:
    async with db.execute(
        "SELECT id, email, role, created_at FROM dash_users WHERE workspace_id = ? ORDER BY email",
        (workspace_id,),
    ) as cur:
        rows = await cur.fetchall()
    return [_item(r) for r in rows]


# ---- a workspace admin's changes (the dashboard): by id, scoped to the workspace ----------


async def get_user(db: aiosqlite.Connection, workspace_id: int, user_id: int) -> UserItem:
    async with db.execute(
        "SELECT id, email, role, created_at FROM dash_users WHERE id = ? AND workspace_id = ?",
        (user_id, workspace_id),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return _item(row)


async def _other_admins(db: aiosqlite.Connection, workspace_id: int, user_id: int) -> int:
    async with db.execute(
        "SELECT count(*) FROM dash_users WHERE workspace_id = ? AND role = 'admin' AND id != ?",
        (workspace_id, user_id),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def set_role(
    db: aiosqlite.Connection, workspace_id: int, user_id: int, role: str
) -> UserItem:
    """Takes effect on the user's next request (a session reads the role each time).
    The workspace's last admin stays admin: nobody could administer it any more."""
    checked = parse_role(role)
    async with transaction(db):
        user = await get_user(db, workspace_id, user_id)
        demoted = checked != "admin" and user.role == "admin"
        if demoted and await _other_admins(db, workspace_id, user_id) == 0:
            raise Conflict("the workspace's last admin cannot become a viewer")
        await db.execute(
            "UPDATE dash_users SET role = ? WHERE id = ? AND workspace_id = ?",
            (checked, user_id, workspace_id),
        )
    return await get_user(db, workspace_id, user_id)


async def remove_user(db: aiosqlite.Connection, workspace_id: int, user_id: int) -> None:
    """Deletes the user and their sessions; never the workspace's last admin."""
    async with transaction(db):
        user = await get_user(db, workspace_id, user_id)
        if user.role == "admin" and await _other_admins(db, workspace_id, user_id) == 0:
            raise Conflict("the workspace's last admin cannot be deleted")
        await db.execute(
            "DELETE FROM dash_users WHERE id = ? AND workspace_id = ?", (user_id, workspace_id)
        )

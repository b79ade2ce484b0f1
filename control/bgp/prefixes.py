"""The prefixes a workspace may have announced upstream (table workspace_prefixes).

An operator declares them (`ftcontrol workspace prefixes NAME add|remove|list PREFIX`);
nothing else can: a deploy token can register a node with any address, and must never be
able to filter or blackhole someone else's network.
"""

from __future__ import annotations

import ipaddress

import aiosqlite

from control.core import clock
from control.core.db import transaction
from control.core.errors import Conflict, InvalidValue, NotFound


def canonical_prefix(text: str) -> str:
    """ "203.0.113.0/24" as is; host bits set, or not a prefix: InvalidValue naming `prefix`."""
    value = text.strip()
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidValue("prefix", f"{value!r} is not an IPv4 or IPv6 prefix") from None
    if "/" not in value:
        raise InvalidValue("prefix", f"{value!r} has no length: write {net} explicitly")
    if net.network_address != ipaddress.ip_interface(value).ip:
        raise InvalidValue("prefix", f"{value!r} has host bits set (the network is {net})")
    return str(net)


async def _workspace_id(db: aiosqlite.Connection, name: str) -> int:
    rows = list(await db.execute_fetchall("SELECT id FROM workspaces WHERE name = ?", (name,)))
    if not rows:
        raise NotFound(f"no workspace named {name!r}")
    return int(rows[0]["id"])


async def add_prefix(db: aiosqlite.Connection, workspace: str, prefix: str) -> str:
    canonical = canonical_prefix(prefix)
    workspace_id = await _workspace_id(db, workspace)
    async with transaction(db) as tx:
        try:
            await tx.execute(
                "INSERT INTO workspace_prefixes (workspace_id, prefix, created_at) "
                "VALUES (?, ?, ?)",
                (workspace_id, canonical, clock.now()),
            )
        except aiosqlite.IntegrityError:
            raise Conflict(f"{canonical} is already declared for {workspace!r}") from None
    return canonical


async def remove_prefix(db: aiosqlite.Connection, workspace: str, prefix: str) -> str:
    """Forget a prefix. Announcements already in force stay until withdrawn or expired."""
    canonical = canonical_prefix(prefix)
    workspace_id = await _workspace_id(db, workspace)
    async with transaction(db) as tx:
        cur = await tx.execute(
            "DELETE FROM workspace_prefixes WHERE workspace_id = ? AND prefix = ?",
            (workspace_id, canonical),
        )
        if cur.rowcount == 0:
            raise NotFound(f"{canonical} is not declared for {workspace!r}")
    return canonical


async def list_prefixes(db: aiosqlite.Connection, workspace: str) -> list[str]:
    return await workspace_prefixes(db, await _workspace_id(db, workspace))


async def workspace_prefixes(db: aiosqlite.Connection, workspace_id: int) -> list[str]:
    rows = await db.execute_fetchall(
        "SELECT prefix FROM workspace_prefixes WHERE workspace_id = ? ORDER BY id",
        (workspace_id,),
    )
    return [str(r["prefix"]) for r in rows]

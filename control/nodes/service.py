"""Nodes: register (deploy), list, read, update, soft-delete, authenticate an agent's key.

A node's `status` is derived when read, never stored:
  attack    - it has an active incident
  offline   - never seen, or its last heartbeat is older than `offline_after_sec`
  elevated  - online, and its last reported pps is above `elevated_factor` x baseline p95
  online    - otherwise
"""

from __future__ import annotations

import json
import uuid as uuidlib
from dataclasses import dataclass

import aiosqlite

from control.core import clock, validation
from control.core.db import SqlParams, transaction
from control.core.errors import Conflict, InvalidValue, NotFound, PaymentRequired, Unauthorized
from control.core.security import hash_secret, new_secret, secret_matches
from control.nodes.schemas import Baseline, Node, NodeDetail, NodePriority, NodeStatus


@dataclass(frozen=True, slots=True)
class NodeStatusPolicy:
    offline_after_sec: float = 15.0  # three missed 5 s heartbeats
    elevated_factor: float = 1.5


@dataclass(frozen=True, slots=True)
class NodeFields:
    """Validated values for a new node."""

    name: str
    ip: str
    location: str | None = None
    os: str | None = None
    interface: str = "eth0"
    priority: NodePriority = "normal"

    @classmethod
    def validated(
        cls,
        *,
        name: str | None,
        ip: str | None,
        location: str | None = None,
        os: str | None = None,
        interface: str | None = None,
        priority: NodePriority | None = None,
    ) -> NodeFields:
        return cls(
            name=validation.node_name(name),
            ip=validation.ip_address(ip),
            location=validation.optional_text("location", location),
            os=validation.optional_text("os", os),
            interface=validation.interface_name(interface) if interface is not None else "eth0",
            priority=priority or "normal",
        )


@dataclass(frozen=True, slots=True)
class NodeCaller:
    """The node an agent request acts for (resolved from its API key and X-Node-UUID)."""

    workspace_id: int
    node_id: int
    node_uuid: str


# Derived per node: its active incident count (once), then its status from that count.
_WITH_ACTIVE = """SELECT n.*, (SELECT count(*) FROM incidents ai
                            WHERE ai.node_id = n.id AND ai.status = 'active') AS active_incidents
FROM nodes n WHERE n.deleted_at IS NULL"""
_STATUS = """CASE
    WHEN active_incidents > 0 THEN 'attack'
    WHEN last_seen IS NULL OR last_seen < :offline_before THEN 'offline'
    WHEN baseline_p95_pps IS NOT NULL AND last_pps > :elevated_factor * baseline_p95_pps
        THEN 'elevated'
    ELSE 'online' END"""


def _live_nodes(where: str = "") -> str:
    """Every live node of :workspace_id (plus `where`), with active_incidents and status."""
    inner = f"{_WITH_ACTIVE} AND n.workspace_id = :workspace_id {where}"
    return f"SELECT *, {_STATUS} AS status FROM ({inner})"  # noqa: S608 (fixed fragments)


_LIVE_NODES = _live_nodes()


def _status_params(policy: NodeStatusPolicy, workspace_id: int) -> SqlParams:
    return {
        "workspace_id": workspace_id,
        "offline_before": clock.now() - policy.offline_after_sec,
        "elevated_factor": policy.elevated_factor,
    }


def node_from_row(row: aiosqlite.Row) -> Node:
    return Node(
        uuid=row["uuid"],
        name=row["name"],
        ip=row["ip"],
        location=row["location"],
        os=row["os"],
        interface=row["interface"],
        priority=row["priority"],
        status=row["status"],
        last_pps=row["last_pps"],
        active_incidents=row["active_incidents"],
        created_at=clock.iso(row["created_at"]) or "",
        last_seen=clock.iso(row["last_seen"]),
        mitigation_policy=row["mitigation_policy"],
        uplink_mbps=row["uplink_mbps"],
    )


def _detail_from_row(row: aiosqlite.Row) -> NodeDetail:
    node = node_from_row(row)
    baseline = None
    if row["baseline_avg_pps"] is not None:
        baseline = Baseline(
            avg_pps=row["baseline_avg_pps"],
            p95_pps=row["baseline_p95_pps"] or 0.0,
            protocols=json.loads(row["baseline_protocols"] or "{}"),
        )
    return NodeDetail(**{f: getattr(node, f) for f in node.__struct_fields__}, baseline=baseline)


async def create_node(
    db: aiosqlite.Connection, workspace_id: int, fields: NodeFields, policy: NodeStatusPolicy
) -> tuple[NodeDetail, str]:
    """Register a node; returns it and its API key (shown once, stored as SHA-256)."""
    api_key = new_secret()
    node_uuid = str(uuidlib.uuid4())
    async with transaction(db):
        async with db.execute(
            """SELECT subscription_status, node_limit,
                      (SELECT count(*) FROM nodes WHERE workspace_id = w.id
                       AND deleted_at IS NULL) AS node_count
               FROM workspaces w WHERE id = ?""",
            (workspace_id,),
        ) as cur:
            ws = await cur.fetchone()
        if ws is None:
            raise NotFound("workspace not found")
        if ws["subscription_status"] != "active":
            raise PaymentRequired(f"subscription is {ws['subscription_status']}, not active")
        if ws["node_count"] >= ws["node_limit"]:
            raise PaymentRequired(f"plan's node limit reached ({ws['node_limit']} nodes)")
        try:
            await db.execute(
                """INSERT INTO nodes (uuid, workspace_id, name, ip, location, os, interface,
                       priority, api_key_hash, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    node_uuid,
                    workspace_id,
                    fields.name,
                    fields.ip,
                    fields.location,
                    fields.os,
                    fields.interface,
                    fields.priority,
                    hash_secret(api_key),
                    clock.now(),
                ),
            )
        except aiosqlite.IntegrityError as exc:
            raise Conflict(f"a node named {fields.name!r} already exists") from exc
    return await get_node(db, workspace_id, node_uuid, policy), api_key


async def list_nodes(
    db: aiosqlite.Connection,
    workspace_id: int,
    policy: NodeStatusPolicy,
    *,
    status: NodeStatus | None,
    limit: int,
    offset: int,
) -> tuple[list[Node], int]:
    params = _status_params(policy, workspace_id)
    if status is None:
        count_sql = (
            "SELECT count(*) FROM nodes n "
            "WHERE n.workspace_id = :workspace_id AND n.deleted_at IS NULL"
        )
        page_sql = _LIVE_NODES
    else:
        params["status"] = status
        page_sql = f"SELECT * FROM ({_LIVE_NODES}) WHERE status = :status"  # noqa: S608
        count_sql = f"SELECT count(*) FROM ({page_sql})"  # noqa: S608
    async with db.execute(count_sql, params) as cur:
        row = await cur.fetchone()
    total = int(row[0]) if row else 0
    async with db.execute(
        page_sql + " ORDER BY created_at, id LIMIT :limit OFFSET :offset",
        {**params, "limit": limit, "offset": offset},
    ) as cur:
        rows = await cur.fetchall()
    return [node_from_row(r) for r in rows], total


async def all_nodes(
    db: aiosqlite.Connection, workspace_id: int, policy: NodeStatusPolicy
) -> list[Node]:
    async with db.execute(
        _LIVE_NODES + " ORDER BY created_at, id", _status_params(policy, workspace_id)
    ) as cur:
        rows = await cur.fetchall()
    return [node_from_row(r) for r in rows]


async def get_node(
    db: aiosqlite.Connection, workspace_id: int, node_uuid: str, policy: NodeStatusPolicy
) -> NodeDetail:
    async with db.execute(
        _live_nodes("AND n.uuid = :uuid"),
        {**_status_params(policy, workspace_id), "uuid": node_uuid},
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound("node not found")
    return _detail_from_row(row)


UPDATABLE = (
    "name",
    "ip",
    "location",
    "os",
    "interface",
    "priority",
    "mitigation_policy",
    "uplink_mbps",
)


async def update_node(
    db: aiosqlite.Connection,
    workspace_id: int,
    node_uuid: str,
    changes: SqlParams,
    policy: NodeStatusPolicy,
) -> NodeDetail:
    """Apply already-validated changes (keys from UPDATABLE) to a live node."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise InvalidValue(sorted(unknown)[0], "cannot be changed")
    if changes:
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        async with transaction(db):
            try:
                cur = await db.execute(
                    f"UPDATE nodes SET {assignments} WHERE workspace_id = :workspace_id "  # noqa: S608
                    "AND uuid = :uuid AND deleted_at IS NULL",
                    {**changes, "workspace_id": workspace_id, "uuid": node_uuid},
                )
            except aiosqlite.IntegrityError as exc:
                raise Conflict(f"a node named {changes.get('name')!r} already exists") from exc
            if cur.rowcount == 0:
                raise NotFound("node not found")
    return await get_node(db, workspace_id, node_uuid, policy)


async def delete_node(db: aiosqlite.Connection, workspace_id: int, node_uuid: str) -> None:
    """Soft delete: hidden from the API, its API key stops working, its name is free again.

    Its incidents stay (history, analytics).
    """
    now = clock.now()
    async with transaction(db):
        cur = await db.execute(
            "UPDATE nodes SET deleted_at = ? WHERE workspace_id = ? AND uuid = ? "
            "AND deleted_at IS NULL",
            (now, workspace_id, node_uuid),
        )
        if cur.rowcount == 0:
            raise NotFound("node not found")


async def rotate_api_key(db: aiosqlite.Connection, workspace_id: int, node_uuid: str) -> str:
    """A new API key for the node (returned once, stored as SHA-256); the old one stops
    working with the next request."""
    api_key = new_secret()
    async with transaction(db):
        cur = await db.execute(
            "UPDATE nodes SET api_key_hash = ? WHERE workspace_id = ? AND uuid = ? "
            "AND deleted_at IS NULL",
            (hash_secret(api_key), workspace_id, node_uuid),
        )
        if cur.rowcount == 0:
            raise NotFound("node not found")
    return api_key


async def authenticate_node(db: aiosqlite.Connection, api_key: str, node_uuid: str) -> NodeCaller:
    """The live node whose API key and UUID these are; Unauthorized otherwise."""
    async with db.execute(
        "SELECT id, workspace_id, uuid, api_key_hash FROM nodes "
        "WHERE api_key_hash = ? AND deleted_at IS NULL",
        (hash_secret(api_key),),
    ) as cur:
        row = await cur.fetchone()
    if row is None or not secret_matches(api_key, row["api_key_hash"]) or row["uuid"] != node_uuid:
        raise Unauthorized("invalid node API key")
    return NodeCaller(workspace_id=row["workspace_id"], node_id=row["id"], node_uuid=row["uuid"])


async def status_counts(
    db: aiosqlite.Connection, policy: NodeStatusPolicy
) -> list[tuple[str, str, int]]:
    """(workspace name, node status, live node count) for every workspace, for /metrics."""
    params = _status_params(policy, 0)
    async with db.execute(
        f"""SELECT w.name AS workspace, s.status, count(*) AS nodes
            FROM (SELECT workspace_id, {_STATUS} AS status FROM ({_WITH_ACTIVE})) s
            JOIN workspaces w ON w.id = s.workspace_id
            GROUP BY w.name, s.status""",  # noqa: S608
        params,
    ) as cur:
        rows = await cur.fetchall()
    return [(r["workspace"], r["status"], int(r["nodes"])) for r in rows]


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A live node's address and upstream policy (fleet groups are built from these)."""

    workspace_id: int
    node_id: int
    node_uuid: str
    name: str
    ip: str
    mitigation_policy: str


async def live_node_addresses(
    db: aiosqlite.Connection, workspace_id: int | None = None
) -> list[NodeAddress]:
    """Every live node of the workspace (None: of every workspace) with its address."""
    where = "" if workspace_id is None else " AND workspace_id = :workspace_id"
    async with db.execute(
        "SELECT id, workspace_id, uuid, name, ip, mitigation_policy FROM nodes "  # noqa: S608
        f"WHERE deleted_at IS NULL{where} ORDER BY id",
        {"workspace_id": workspace_id},
    ) as cur:
        rows = await cur.fetchall()
    return [
        NodeAddress(
            workspace_id=r["workspace_id"],
            node_id=r["id"],
            node_uuid=r["uuid"],
            name=r["name"],
            ip=r["ip"],
            mitigation_policy=r["mitigation_policy"],
        )
        for r in rows
    ]

"""Fleet groups in the store: which groups a workspace has, their settings (fleet_groups)
and their learned baselines (fleet_baselines). Every function is scoped to one workspace.

A workspace's groups: each of its declared prefixes (`ftcontrol workspace prefixes`) and
'workspace' (all its live nodes). Membership comes from the nodes' addresses
(control.nodes.service.live_node_addresses), computed by the engine.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

import aiosqlite
import msgspec

from control.bgp import prefixes
from control.core import clock
from control.core.db import transaction
from control.core.errors import InvalidValue, NotFound
from control.fleet.baseline import BaselineState
from control.fleet.settings import FLOOR_NAMES, FleetThresholds

WORKSPACE_GROUP = "workspace"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class GroupSettings:
    uplink_mbps: float | None = None
    thresholds: FleetThresholds = field(default_factory=FleetThresholds)


def network_of(group_key: str) -> Network | None:
    return None if group_key == WORKSPACE_GROUP else ipaddress.ip_network(group_key)


def contains(network: Network | None, ip: str) -> bool:
    if network is None:
        return True
    try:
        return ipaddress.ip_address(ip) in network
    except ValueError:
        return False


async def group_keys(db: aiosqlite.Connection, workspace_id: int) -> list[str]:
    return [*await prefixes.workspace_prefixes(db, workspace_id), WORKSPACE_GROUP]


async def canonical_group(db: aiosqlite.Connection, workspace_id: int, text: str) -> str:
    """A group of this workspace by its key; InvalidValue naming `group` otherwise."""
    value = text.strip()
    if value == WORKSPACE_GROUP:
        return value
    try:
        key = prefixes.canonical_prefix(value)
    except InvalidValue as exc:
        raise InvalidValue(
            "group",
            f"{exc.reason.removeprefix('prefix: ')} "
            f"(a declared prefix of the workspace, or {WORKSPACE_GROUP!r})",
        ) from None
    if key not in await prefixes.workspace_prefixes(db, workspace_id):
        raise InvalidValue("group", f"{key} is not a declared prefix of this workspace")
    return key


def check_thresholds(t: FleetThresholds, field: str = "thresholds") -> FleetThresholds:
    """What decoding cannot check: the floor names."""
    for name, value in (t.floors or {}).items():
        if name not in FLOOR_NAMES:
            raise InvalidValue(
                f"{field}.floors", f"unknown metric {name!r} (one of {', '.join(FLOOR_NAMES)})"
            )
        if not math.isfinite(value):
            raise InvalidValue(f"{field}.floors", f"{name}: must be a finite number")
    return t


async def all_settings(db: aiosqlite.Connection, workspace_id: int) -> dict[str, GroupSettings]:
    rows = await db.execute_fetchall(
        "SELECT group_key, uplink_mbps, thresholds FROM fleet_groups WHERE workspace_id = ?",
        (workspace_id,),
    )
    return {
        r["group_key"]: GroupSettings(
            uplink_mbps=r["uplink_mbps"],
            thresholds=msgspec.json.decode(r["thresholds"], type=FleetThresholds),
        )
        for r in rows
    }


async def set_settings(
    db: aiosqlite.Connection, workspace_id: int, group_key: str, settings: GroupSettings
) -> None:
    """Store a group's settings (`group_key` already checked with canonical_group)."""
    check_thresholds(settings.thresholds)
    async with transaction(db) as tx:
        await tx.execute(
            """INSERT INTO fleet_groups (workspace_id, group_key, uplink_mbps, thresholds,
                   updated_at) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (workspace_id, group_key) DO UPDATE SET
                   uplink_mbps = excluded.uplink_mbps, thresholds = excluded.thresholds,
                   updated_at = excluded.updated_at""",
            (
                workspace_id,
                group_key,
                settings.uplink_mbps,
                msgspec.json.encode(settings.thresholds).decode(),
                clock.now(),
            ),
        )


async def workspace_id_of(db: aiosqlite.Connection, name: str) -> int:
    rows = list(await db.execute_fetchall("SELECT id FROM workspaces WHERE name = ?", (name,)))
    if not rows:
        raise NotFound(f"no workspace named {name!r}")
    return int(rows[0]["id"])


# ---- baselines ---------------------------------------------------------------------------


async def load_baselines(db: aiosqlite.Connection) -> dict[tuple[int, str], BaselineState]:
    """Every group's saved baseline (unreadable ones are skipped: learned again)."""
    out: dict[tuple[int, str], BaselineState] = {}
    for r in await db.execute_fetchall(
        "SELECT workspace_id, group_key, state FROM fleet_baselines"
    ):
        try:
            out[(r["workspace_id"], r["group_key"])] = msgspec.json.decode(
                r["state"], type=BaselineState
            )
        except msgspec.DecodeError:
            continue
    return out


async def save_baselines(
    db: aiosqlite.Connection, states: dict[tuple[int, str], BaselineState]
) -> None:
    if not states:
        return
    async with transaction(db) as tx:
        await tx.executemany(
            """INSERT INTO fleet_baselines (workspace_id, group_key, state, saved_at)
               VALUES (?, ?, ?, ?)
               ON CONFLICT (workspace_id, group_key) DO UPDATE SET state = excluded.state,
                   saved_at = excluded.saved_at""",
            [
                (ws, key, msgspec.json.encode(state).decode(), state.saved_at)
                for (ws, key), state in states.items()
            ],
        )


@dataclass(frozen=True, slots=True)
class LastReport:
    """A live node's newest metric point in the store (agent_state.last_metric_ts)."""

    workspace_id: int
    node_id: int
    ts: float


async def last_reports(db: aiosqlite.Connection) -> list[LastReport]:
    """Every live node that ever posted a point, with its newest point's second (all
    workspaces: a restarted engine's expected members come from these)."""
    async with db.execute(
        "SELECT n.workspace_id, n.id, s.last_metric_ts FROM nodes n "
        "JOIN agent_state s ON s.node_id = n.id "
        "WHERE n.deleted_at IS NULL AND s.last_metric_ts IS NOT NULL"
    ) as cur:
        rows = await cur.fetchall()
    return [LastReport(r[0], r[1], float(r[2])) for r in rows]

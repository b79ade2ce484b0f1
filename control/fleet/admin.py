"""`ftcontrol workspace groups NAME list|set GROUP ...`: a group's settings from the shell.

`set` changes only what is given (the other overrides stay); values are checked as the
REST API checks them (InvalidValue naming the field).
"""

from __future__ import annotations

import aiosqlite
import msgspec

from control.core.errors import InvalidValue
from control.fleet import groups as group_store
from control.fleet.groups import GroupSettings
from control.fleet.settings import FleetThresholds, Uplink
from control.nodes.service import live_node_addresses


def parse_floors(items: list[str]) -> dict[str, float]:
    floors: dict[str, float] = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            floors[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InvalidValue("floor", f"{item!r} is not METRIC=NUMBER")
    return floors


async def describe_groups(db: aiosqlite.Connection, workspace: str) -> list[str]:
    workspace_id = await group_store.workspace_id_of(db, workspace)
    settings = await group_store.all_settings(db, workspace_id)
    nodes = await live_node_addresses(db, workspace_id)
    lines = []
    for key in await group_store.group_keys(db, workspace_id):
        gs = settings.get(key, GroupSettings())
        network = group_store.network_of(key)
        members = sum(1 for n in nodes if group_store.contains(network, n.ip))
        uplink = f"{gs.uplink_mbps:g} Mbps" if gs.uplink_mbps is not None else "-"
        overrides = msgspec.json.encode(gs.thresholds).decode()
        lines.append(f"{key}\tnodes={members}\tuplink={uplink}\toverrides={overrides}")
    return lines


async def set_group(
    db: aiosqlite.Connection,
    workspace: str,
    group: str,
    *,
    uplink_mbps: float | None,
    changes: dict[str, float | int | None],
    floors: list[str],
) -> str:
    workspace_id = await group_store.workspace_id_of(db, workspace)
    key = await group_store.canonical_group(db, workspace_id, group)
    current = (await group_store.all_settings(db, workspace_id)).get(key, GroupSettings())
    merged = msgspec.structs.asdict(current.thresholds)
    merged.update({k: v for k, v in changes.items() if v is not None})
    if floors:
        merged["floors"] = {**(current.thresholds.floors or {}), **parse_floors(floors)}
    try:
        thresholds = msgspec.convert(
            {k: v for k, v in merged.items() if v is not None}, FleetThresholds
        )
        if uplink_mbps is not None:
            msgspec.convert({"uplink_mbps": uplink_mbps}, _Uplink)
    except msgspec.ValidationError as exc:
        raise InvalidValue(_field_of(str(exc)), str(exc)) from None
    await group_store.set_settings(
        db,
        workspace_id,
        key,
        GroupSettings(
            uplink_mbps=uplink_mbps if uplink_mbps is not None else current.uplink_mbps,
            thresholds=group_store.check_thresholds(thresholds, "floor"),
        ),
    )
    return key


class _Uplink(msgspec.Struct):
    uplink_mbps: Uplink


def _field_of(message: str) -> str:
    # msgspec: "Expected `float` >= 1.0 - at `$.multiplier`"
    path = message.rpartition("`$.")[2].rstrip("`")
    return path.split(".")[0].split("[")[0] if "`$." in message else "thresholds"

"""Fleet routes.

REST API v1 (deploy-token auth, the caller's workspace only):
- GET /api/v1/fleet/groups   each group: key, prefix, member count, uplink, thresholds in
                             force and the group's overrides, baseline state, the active
                             fleet incident's uuid
- PUT /api/v1/fleet/groups   {group, uplink_mbps?, thresholds?}: a field left out is kept;
                             uplink_mbps null clears it; thresholds replaces the overrides

Agent API (node auth, as every /api/v1/agent route):
- GET /api/v1/agent/fleet?after=V&wait=S   the node's fleet orders; held until the node's
                             version differs from V or S seconds passed (S <= max_wait_s)
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

import msgspec
from litestar import Controller, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, JSONBody

from control.agentapi import node_control
from control.core.auth import node_guard, provide_node
from control.core.deps import CallerDep, Db
from control.core.errors import InvalidValue
from control.fleet import groups as group_store
from control.fleet.engine import FleetEngine
from control.fleet.groups import GroupSettings
from control.fleet.lifespan import fleet_of
from control.fleet.settings import FleetThresholds, Uplink
from control.nodes.service import NodeCaller, live_node_addresses
from ftcontract.agent_api import FleetOrders

BaselineStateName = Literal["learning", "ready", "off"]


class ThresholdsInForce(msgspec.Struct, kw_only=True):
    multiplier: float
    burst_factor: float
    confirm_s: int
    cooldown_s: float
    floors: dict[str, float]


class GroupBaselineView(msgspec.Struct, kw_only=True):
    state: BaselineStateName  # off: fleet detection is turned off
    samples: int
    p99_pps: float | None  # null until ready


class FleetGroup(msgspec.Struct, kw_only=True):
    key: str  # a declared prefix, or "workspace"
    prefix: str | None  # null for the workspace group
    members: int  # live nodes whose address lies in the group
    uplink_mbps: float | None
    overrides: FleetThresholds
    thresholds: ThresholdsInForce
    baseline: GroupBaselineView
    active_incident: str | None  # uuid of the group's active fleet incident


class FleetGroupList(msgspec.Struct, kw_only=True):
    ok: bool
    groups: list[FleetGroup]


class FleetGroupOne(msgspec.Struct, kw_only=True):
    ok: bool
    group: FleetGroup


class GroupUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    group: str  # a declared prefix of the workspace ("203.0.113.0/24") or "workspace"
    uplink_mbps: Uplink | msgspec.UnsetType | None = msgspec.UNSET
    thresholds: FleetThresholds | msgspec.UnsetType = msgspec.UNSET


async def group_views(db: Db, fleet: FleetEngine, workspace_id: int) -> list[FleetGroup]:
    settings = await group_store.all_settings(db, workspace_id)
    nodes = await live_node_addresses(db, workspace_id)
    out = []
    for key in await group_store.group_keys(db, workspace_id):
        gs = settings.get(key, GroupSettings())
        network = group_store.network_of(key)
        eff = fleet.settings.effective(gs.thresholds)
        runtime = fleet.groups.get((workspace_id, key))
        if runtime is None or not fleet.enabled:
            baseline = GroupBaselineView(state="off" if not fleet.enabled else "learning",
                                         samples=0, p99_pps=None)  # fmt: skip
        else:
            b = runtime.baseline
            baseline = GroupBaselineView(
                state="ready" if b.ready else "learning",
                samples=b.samples,
                p99_pps=b.p99("pps", fleet.clock()) if b.ready else None,
            )
        out.append(
            FleetGroup(
                key=key,
                prefix=str(network) if network is not None else None,
                members=sum(1 for n in nodes if group_store.contains(network, n.ip)),
                uplink_mbps=gs.uplink_mbps,
                overrides=gs.thresholds,
                thresholds=ThresholdsInForce(**msgspec.structs.asdict(eff)),
                baseline=baseline,
                active_incident=runtime.incident_uuid if runtime is not None else None,
            )
        )
    return out


class FleetGroupsController(Controller):
    path = "/fleet/groups"
    tags = ["fleet"]

    @get(summary="The workspace's fleet groups, their settings and state")
    async def list_groups(self, caller: CallerDep, db: Db, state: State) -> FleetGroupList:
        groups = await group_views(db, fleet_of(state), caller.workspace_id)
        return FleetGroupList(ok=True, groups=groups)

    @put(status_code=200, summary="Set a group's uplink and threshold overrides")
    async def set_group(
        self, data: JSONBody[GroupUpdate], caller: CallerDep, db: Db, state: State
    ) -> FleetGroupOne:
        key = await group_store.canonical_group(db, caller.workspace_id, data.group)
        current = (await group_store.all_settings(db, caller.workspace_id)).get(
            key, GroupSettings()
        )
        uplink = current.uplink_mbps if data.uplink_mbps is msgspec.UNSET else data.uplink_mbps
        thresholds = (
            current.thresholds
            if isinstance(data.thresholds, msgspec.UnsetType)
            else data.thresholds
        )
        group_store.check_thresholds(thresholds)
        await group_store.set_settings(
            db, caller.workspace_id, key, GroupSettings(uplink_mbps=uplink, thresholds=thresholds)
        )
        fleet = fleet_of(state)
        if fleet.enabled:
            await fleet.refresh()  # in force from the next evaluated second
        views = await group_views(db, fleet, caller.workspace_id)
        return FleetGroupOne(ok=True, group=next(v for v in views if v.key == key))


NodeDep: TypeAlias = NamedDependency[NodeCaller]


class FleetAgentController(Controller):
    path = "/api/v1/agent"
    tags = ["agent"]
    dependencies = {"node": Provide(provide_node)}
    guards = [node_guard]

    @get("/fleet", summary="This node's fleet orders (long-poll: ?after=VERSION&wait=S)")
    async def fleet_orders(
        self,
        node: NodeDep,
        state: State,
        after: FromQuery[int | None] = None,
        wait: FromQuery[float] = 0.0,
    ) -> FleetOrders:
        fleet = fleet_of(state)
        limit = fleet.settings.max_wait_s
        if not (math.isfinite(wait) and 0 <= wait <= limit):
            raise InvalidValue("wait", f"must be between 0 and {limit:g} seconds")
        version = fleet.orders.version(node.node_id)
        if after is not None:
            version = await fleet.orders.wait(node.node_id, after, wait)
        config_version, pending = await node_control.config_state(state.db, node.node_id)
        return FleetOrders(
            version=version,
            orders=fleet.orders.orders(node.node_id),
            config_version=config_version,
            pending_commands=pending,
        )

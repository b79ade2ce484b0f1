"""REST API v1 nodes: list, create, read, update, soft-delete."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from control.bgp.schemas import MitigationPolicy
from control.core import validation
from control.core.api_types import Ok
from control.core.db import SqlParams
from control.core.deps import CallerDep, Db, IncidentsDep, NodePolicyDep
from control.nodes import service as node_store
from control.nodes.schemas import Node, NodeDetail, NodePriority, NodeStatus
from control.nodes.service import NodeFields


class NodeCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str  # 1-100 characters, unique among the workspace's live nodes
    ip: str  # IPv4 or IPv6, stored in canonical form
    location: str | None = None
    os: str | None = None
    interface: str = "eth0"
    priority: NodePriority = "normal"


class NodeUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change; location/os may be set to null to clear them."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    ip: str | msgspec.UnsetType = msgspec.UNSET
    location: str | msgspec.UnsetType | None = msgspec.UNSET
    os: str | msgspec.UnsetType | None = msgspec.UNSET
    interface: str | msgspec.UnsetType = msgspec.UNSET
    priority: NodePriority | msgspec.UnsetType = msgspec.UNSET
    # upstream mitigation (BGP): when this node is escalated automatically
    mitigation_policy: MitigationPolicy | msgspec.UnsetType = msgspec.UNSET
    # the uplink's capacity in Mbit/s (null clears it); automatic FlowSpec at
    # escalate_uplink_share of it
    uplink_mbps: float | msgspec.UnsetType | None = msgspec.UNSET


class NodeList(msgspec.Struct, kw_only=True):
    ok: bool
    nodes: list[Node]
    total: int
    limit: int
    offset: int


class NodeKey(msgspec.Struct, kw_only=True):
    ok: bool
    node_uuid: str
    api_key: str  # the new key, shown only here; the old one no longer works


class NodeOne(msgspec.Struct, kw_only=True):
    ok: bool
    node: NodeDetail


class NodeCreated(msgspec.Struct, kw_only=True):
    ok: bool
    node: NodeDetail
    api_key: str  # 64 hex characters, shown only here; the store keeps its SHA-256


def _validated_changes(data: NodeUpdate) -> SqlParams:
    changes: SqlParams = {}
    if not isinstance(data.name, msgspec.UnsetType):
        changes["name"] = validation.node_name(data.name)
    if not isinstance(data.ip, msgspec.UnsetType):
        changes["ip"] = validation.ip_address(data.ip)
    if not isinstance(data.location, msgspec.UnsetType):
        changes["location"] = validation.optional_text("location", data.location)
    if not isinstance(data.os, msgspec.UnsetType):
        changes["os"] = validation.optional_text("os", data.os)
    if not isinstance(data.interface, msgspec.UnsetType):
        changes["interface"] = validation.interface_name(data.interface)
    if not isinstance(data.priority, msgspec.UnsetType):
        changes["priority"] = data.priority
    if not isinstance(data.mitigation_policy, msgspec.UnsetType):
        changes["mitigation_policy"] = data.mitigation_policy
    if not isinstance(data.uplink_mbps, msgspec.UnsetType):
        changes["uplink_mbps"] = validation.uplink_mbps(data.uplink_mbps)
    return changes


class NodesController(Controller):
    path = "/nodes"
    tags = ["nodes"]

    @get(summary="List the workspace's nodes")
    async def list_nodes(
        self,
        caller: CallerDep,
        db: Db,
        node_policy: NodePolicyDep,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
        status: FromQuery[NodeStatus | None] = None,
    ) -> NodeList:
        validation.page(limit, offset)
        nodes, total = await node_store.list_nodes(
            db, caller.workspace_id, node_policy, status=status, limit=limit, offset=offset
        )
        return NodeList(ok=True, nodes=nodes, total=total, limit=limit, offset=offset)

    @post(summary="Create a node (like /api/deploy, returning the full node and its API key)")
    async def create_node(
        self,
        data: JSONBody[NodeCreate],
        caller: CallerDep,
        db: Db,
        node_policy: NodePolicyDep,
    ) -> NodeCreated:
        fields = NodeFields.validated(
            name=data.name,
            ip=data.ip,
            location=data.location,
            os=data.os,
            interface=data.interface,
            priority=data.priority,
        )
        node, api_key = await node_store.create_node(db, caller.workspace_id, fields, node_policy)
        return NodeCreated(ok=True, node=node, api_key=api_key)

    @get("/{node_uuid:str}", summary="Get a node with its baseline")
    async def get_node(
        self,
        node_uuid: FromPath[str],
        caller: CallerDep,
        db: Db,
        node_policy: NodePolicyDep,
    ) -> NodeOne:
        node = await node_store.get_node(db, caller.workspace_id, node_uuid, node_policy)
        return NodeOne(ok=True, node=node)

    @patch("/{node_uuid:str}", summary="Update a node's fields")
    async def update_node(
        self,
        node_uuid: FromPath[str],
        data: JSONBody[NodeUpdate],
        caller: CallerDep,
        db: Db,
        node_policy: NodePolicyDep,
    ) -> NodeOne:
        node = await node_store.update_node(
            db, caller.workspace_id, node_uuid, _validated_changes(data), node_policy
        )
        return NodeOne(ok=True, node=node)

    @post(
        "/{node_uuid:str}/rotate-key",
        status_code=200,
        summary="Replace the node's API key (the old one stops working at once)",
    )
    async def rotate_key(self, node_uuid: FromPath[str], caller: CallerDep, db: Db) -> NodeKey:
        api_key = await node_store.rotate_api_key(db, caller.workspace_id, node_uuid)
        return NodeKey(ok=True, node_uuid=node_uuid, api_key=api_key)

    @delete("/{node_uuid:str}", status_code=200, summary="Soft-delete a node")
    async def delete_node(
        self, node_uuid: FromPath[str], caller: CallerDep, db: Db, incidents: IncidentsDep
    ) -> Ok:
        await node_store.delete_node(db, caller.workspace_id, node_uuid)
        # Nothing will report the end of its attacks any more: close them now.
        await incidents.resolve_all_of_node(caller.workspace_id, node_uuid)
        return Ok(ok=True)

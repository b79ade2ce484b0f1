"""POST /api/deploy: register a node with the workspace deploy token; returns its API key."""

from __future__ import annotations

import aiosqlite
import msgspec
from litestar import post

from control.auth import BEARER
from control.services.nodes import NodeFields, NodeStatusPolicy, create_node
from control.services.workspaces import Caller


class DeployRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str  # display name, 1-100 characters, unique among the workspace's live nodes
    ip: str  # public IPv4 or IPv6 address (stored in canonical form)
    location: str | None = None
    os: str | None = None
    interface: str = "eth0"


class DeployResponse(msgspec.Struct, kw_only=True):
    ok: bool
    node_uuid: str
    api_key: str  # 64 hex characters, shown only here; the store keeps its SHA-256
    name: str
    ip: str


@post(
    "/api/deploy",
    status_code=200,
    tags=["deploy"],
    summary="Register a node",
    security=[{BEARER: []}],
)
async def deploy(
    data: DeployRequest,
    caller: Caller,
    db: aiosqlite.Connection,
    node_policy: NodeStatusPolicy,
) -> DeployResponse:
    fields = NodeFields.validated(
        name=data.name, ip=data.ip, location=data.location, os=data.os, interface=data.interface
    )
    node, api_key = await create_node(db, caller.workspace_id, fields, node_policy)
    return DeployResponse(ok=True, node_uuid=node.uuid, api_key=api_key, name=node.name, ip=node.ip)

"""POST /api/deploy: register a node with the workspace deploy token; returns its API key."""

from __future__ import annotations

import msgspec
from litestar import post
from litestar.params import FromPath, JSONBody

from control.api.deps import CallerDep, Db, NodePolicyDep
from control.auth import BEARER
from control.services.nodes import NodeFields, create_node


class DeployRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str  # display name, 1-100 characters, unique among the workspace's live nodes
    ip: str  # public IPv4 or IPv6 address (stored in canonical form)
    location: str | None = None
    os: str | None = None
    interface: str = "eth0"


class DeployResponse(msgspec.Struct, kw_only=True):
    ok: bool
    node_uuid: FromPath[str]
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
    data: JSONBody[DeployRequest],
    caller: CallerDep,
    db: Db,
    node_policy: NodePolicyDep,
) -> DeployResponse:
    fields = NodeFields.validated(
        name=data.name, ip=data.ip, location=data.location, os=data.os, interface=data.interface
    )
    node, api_key = await create_node(db, caller.workspace_id, fields, node_policy)
    return DeployResponse(ok=True, node_uuid=node.uuid, api_key=api_key, name=node.name, ip=node.ip)

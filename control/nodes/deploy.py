"""POST /api/deploy: register a node with the workspace deploy token; returns its API key."""

from __future__ import annotations

from litestar import post
from litestar.params import JSONBody

from control.core.auth import BEARER
from control.core.deps import CallerDep, Db, NodePolicyDep
from control.nodes.service import NodeFields, create_node
from ftcontract.deploy_api import DeployReply, DeployRequest


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
) -> DeployReply:
    fields = NodeFields.validated(
        name=data.name, ip=data.ip, location=data.location, os=data.os, interface=data.interface
    )
    node, api_key = await create_node(db, caller.workspace_id, fields, node_policy)
    return DeployReply(ok=True, node_uuid=node.uuid, api_key=api_key, name=node.name, ip=node.ip)

"""REST API v1: an operator blocks and unblocks addresses on a node (deploy-token auth).

- POST   /api/v1/nodes/{uuid}/rules         block an address or prefix on the node by hand
- GET    /api/v1/nodes/{uuid}/rules         the node's operator rules and their state
- DELETE /api/v1/nodes/{uuid}/rules/{id}    unblock it

Each change becomes a command the node's agent fetches (control.agentapi.node_control);
its fleet long-poll (GET /api/v1/agent/fleet) wakes at once to say so.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from control.agentapi import node_control
from control.agentapi.node_control import NodeRule
from control.core.api_types import RowId
from control.core.deps import CallerDep, Db
from control.fleet.lifespan import fleet_of


class RuleCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    target: str  # IPv4/IPv6 address or prefix, e.g. "198.51.100.7" or "203.0.113.0/24"
    ttl_s: float = 3600.0  # seconds the agent keeps the block (at most 7 days)


class RuleOne(msgspec.Struct, kw_only=True):
    ok: bool
    rule: NodeRule


class RuleList(msgspec.Struct, kw_only=True):
    ok: bool
    rules: list[NodeRule]


class NodeOperatorRulesController(Controller):
    path = "/nodes/{node_uuid:str}/rules"
    tags = ["nodes"]

    @get(summary="List the node's operator rules")
    async def list_rules(self, node_uuid: FromPath[str], caller: CallerDep, db: Db) -> RuleList:
        rules = await node_control.list_rules(db, caller.workspace_id, node_uuid)
        return RuleList(ok=True, rules=rules)

    @post(status_code=201, summary="Block an address or prefix on the node")
    async def create_rule(
        self,
        node_uuid: FromPath[str],
        data: JSONBody[RuleCreate],
        caller: CallerDep,
        db: Db,
        state: State,
    ) -> RuleOne:
        rule = await node_control.create_rule(
            db, caller.workspace_id, node_uuid, data.target, data.ttl_s, fleet_of(state).orders.bump
        )
        return RuleOne(ok=True, rule=rule)

    @delete("/{rule_id:int}", status_code=200, summary="Unblock (remove an operator rule)")
    async def delete_rule(
        self, node_uuid: FromPath[str], rule_id: RowId, caller: CallerDep, db: Db, state: State
    ) -> RuleOne:
        rule = await node_control.delete_rule(
            db, caller.workspace_id, node_uuid, rule_id, fleet_of(state).orders.bump
        )
        return RuleOne(ok=True, rule=rule)

"""REST API v1: a node's agent as the control plane sees it (deploy-token auth).

- GET     /api/v1/nodes/{uuid}/agent          the agent's last heartbeat (version, spool ...)
- GET/PUT /api/v1/nodes/{uuid}/agent-config   overrides served to the agent (its GET config)
"""

from __future__ import annotations

import msgspec
from litestar import Controller, get, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from control.agentapi import node_control
from control.agentapi.node_control import AgentState
from control.core.deps import CallerDep, Db
from control.fleet.lifespan import fleet_of
from ftcontract import agent_api


class AgentStateOne(msgspec.Struct, kw_only=True):
    ok: bool
    agent: AgentState


class OverridesOne(msgspec.Struct, kw_only=True):
    ok: bool
    config: agent_api.Overrides


class NodeAgentController(Controller):
    path = "/nodes/{node_uuid:str}"
    tags = ["nodes"]

    @get("/agent", summary="The node's agent as its last heartbeat described it")
    async def get_agent(self, node_uuid: FromPath[str], caller: CallerDep, db: Db) -> AgentStateOne:
        state = await node_control.agent_state(db, caller.workspace_id, node_uuid)
        return AgentStateOne(ok=True, agent=state)

    @get("/agent-config", summary="Overrides served to the node's agent")
    async def get_agent_config(
        self, node_uuid: FromPath[str], caller: CallerDep, db: Db
    ) -> OverridesOne:
        config = await node_control.get_overrides(db, caller.workspace_id, node_uuid)
        return OverridesOne(ok=True, config=config)

    @put("/agent-config", summary="Replace the overrides served to the node's agent")
    async def put_agent_config(
        self,
        node_uuid: FromPath[str],
        data: JSONBody[agent_api.Overrides],
        caller: CallerDep,
        db: Db,
        state: State,
    ) -> OverridesOne:
        config = await node_control.set_overrides(
            db, caller.workspace_id, node_uuid, data, fleet_of(state).orders.bump
        )
        return OverridesOne(ok=True, config=config)

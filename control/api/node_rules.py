"""REST API v1 additions of the Agent API area (deploy-token auth, workspace-scoped):

- POST   /api/v1/nodes/{uuid}/rules         block an address or prefix on the node by hand
- GET    /api/v1/nodes/{uuid}/rules         the node's operator rules and their state
- DELETE /api/v1/nodes/{uuid}/rules/{id}    unblock it
- GET    /api/v1/nodes/{uuid}/agent         the agent's last heartbeat (version, spool ...)
- GET/PUT /api/v1/nodes/{uuid}/agent-config overrides served to the agent (GET config)
- GET    /api/v1/nodes/{uuid}/traffic       traffic history from the one-minute roll-ups
- GET    /api/v1/incidents/{uuid}/pcap      download the incident's pcap
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Router, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import File

from control import clock
from control.agentapi import node_control
from control.agentapi.node_control import AgentState, NodeRule
from control.agentapi.runtime import agentapi_of
from control.api.common import RowId
from control.api.deps import CallerDep, Db
from control.auth import BEARER
from ftcontract import agent_api

TrafficRange = Literal["1h", "24h", "7d", "30d", "90d"]
# range -> (seconds covered, seconds per returned point)
_RANGES: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "24h": (86400, 300),
    "7d": (7 * 86400, 3600),
    "30d": (30 * 86400, 3 * 3600),
    "90d": (90 * 86400, 6 * 3600),
}


class RuleCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    target: str  # IPv4/IPv6 address or prefix, e.g. "198.51.100.7" or "203.0.113.0/24"
    ttl_s: float = 3600.0  # seconds the agent keeps the block (at most 7 days)


class RuleOne(msgspec.Struct, kw_only=True):
    ok: bool
    rule: NodeRule


class RuleList(msgspec.Struct, kw_only=True):
    ok: bool
    rules: list[NodeRule]


class AgentStateOne(msgspec.Struct, kw_only=True):
    ok: bool
    agent: AgentState


class OverridesOne(msgspec.Struct, kw_only=True):
    ok: bool
    config: agent_api.Overrides


class TrafficPoint(msgspec.Struct, kw_only=True):
    t: str  # start of the interval
    pps_avg: float
    pps_max: float
    bps_avg: float
    bps_max: float
    dropped_pps_avg: float


class Traffic(msgspec.Struct, kw_only=True):
    ok: bool
    range: str
    step_sec: int
    pps_avg: float | None
    pps_max: float | None
    bps_max: float | None
    attack_minutes: int
    points: list[TrafficPoint]


class NodeRulesController(Controller):
    path = "/nodes/{node_uuid:str}"
    tags = ["nodes"]

    @get("/rules", summary="List the node's operator rules")
    async def list_rules(self, node_uuid: FromPath[str], caller: CallerDep, db: Db) -> RuleList:
        rules = await node_control.list_rules(db, caller.workspace_id, node_uuid)
        return RuleList(ok=True, rules=rules)

    @post("/rules", status_code=201, summary="Block an address or prefix on the node")
    async def create_rule(
        self, node_uuid: FromPath[str], data: JSONBody[RuleCreate], caller: CallerDep, db: Db
    ) -> RuleOne:
        rule = await node_control.create_rule(
            db, caller.workspace_id, node_uuid, data.target, data.ttl_s
        )
        return RuleOne(ok=True, rule=rule)

    @delete("/rules/{rule_id:int}", status_code=200, summary="Unblock (remove an operator rule)")
    async def delete_rule(
        self, node_uuid: FromPath[str], rule_id: RowId, caller: CallerDep, db: Db
    ) -> RuleOne:
        rule = await node_control.delete_rule(db, caller.workspace_id, node_uuid, rule_id)
        return RuleOne(ok=True, rule=rule)

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
    ) -> OverridesOne:
        config = await node_control.set_overrides(db, caller.workspace_id, node_uuid, data)
        return OverridesOne(ok=True, config=config)

    @get("/traffic", summary="Traffic history from one-minute roll-ups")
    async def traffic(
        self,
        node_uuid: FromPath[str],
        caller: CallerDep,
        db: Db,
        range_: Annotated[TrafficRange, QueryParameter(name="range")] = "24h",
    ) -> Traffic:
        span, step = _RANGES[range_]
        node_id = await node_control.live_node_id(db, caller.workspace_id, node_uuid)
        since = int(clock.now()) - span
        params: dict[str, Any] = {"node": node_id, "since": since, "step": step}
        points = [
            TrafficPoint(
                t=clock.iso(r["bucket"]) or "",
                pps_avg=r["pps_avg"],
                pps_max=r["pps_max"],
                bps_avg=r["bps_avg"],
                bps_max=r["bps_max"],
                dropped_pps_avg=r["dropped"],
            )
            for r in await db.execute_fetchall(
                """SELECT minute / :step * :step AS bucket,
                          sum(pps_avg * samples) / sum(samples) AS pps_avg, max(pps_max) AS pps_max,
                          sum(bps_avg * samples) / sum(samples) AS bps_avg, max(bps_max) AS bps_max,
                          sum(dropped_pps_avg * samples) / sum(samples) AS dropped
                   FROM node_metrics_minute WHERE node_id = :node AND minute >= :since
                   GROUP BY bucket ORDER BY bucket""",
                params,
            )
        ]
        (totals,) = list(
            await db.execute_fetchall(
                """SELECT sum(pps_avg * samples) / sum(samples) AS pps_avg,
                          max(pps_max) AS pps_max, max(bps_max) AS bps_max,
                          sum(attack_samples > 0) AS attack_minutes
                   FROM node_metrics_minute WHERE node_id = :node AND minute >= :since""",
                params,
            )
        )
        return Traffic(
            ok=True,
            range=range_,
            step_sec=step,
            pps_avg=totals["pps_avg"],
            pps_max=totals["pps_max"],
            bps_max=totals["bps_max"],
            attack_minutes=int(totals["attack_minutes"] or 0),
            points=points,
        )


@get(
    "/incidents/{incident_uuid:str}/pcap",
    tags=["incidents"],
    summary="Download the incident's pcap",
)
async def download_pcap(incident_uuid: FromPath[str], caller: CallerDep, state: State) -> File:
    stored = await agentapi_of(state).pcaps.find(caller.workspace_id, incident_uuid)
    return File(
        path=stored.path,
        filename=f"{incident_uuid}.pcap",
        media_type="application/vnd.tcpdump.pcap",
        headers={"X-Content-SHA256": stored.sha256},
    )


def agent_rest_router() -> Router:
    return Router(
        path="/api/v1",
        route_handlers=[NodeRulesController, download_pcap],
        security=[{BEARER: []}],
    )

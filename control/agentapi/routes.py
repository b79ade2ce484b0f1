"""Agent API: /api/v1/agent/* for the ftagent on each node (node API key + X-Node-UUID).

Not for people: `ftagent` speaks it (ftagent.report). Message shapes are defined once in
ftcontract.agent_api. Every write is idempotent so the agent can resend after any failure:
metric points are keyed by (node, second), incidents by the agent's uuid and `seq`,
acks by command id, pcaps by incident.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, TypeAlias

from litestar import Controller, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, JSONBody

from control.agentapi import node_control
from control.agentapi.metrics_store import Overloaded
from control.agentapi.runtime import AgentApi, agentapi_of
from control.bgp.lifespan import upstream_of
from control.core.auth import node_guard, provide_node
from control.core.deps import Db, NodePolicyDep
from control.core.errors import InvalidValue, PayloadTooLarge, ServiceBusy
from control.dashboard.live import live_hub_of
from control.fleet.lifespan import fleet_of
from control.nodes import service as node_store
from control.nodes.service import NodeCaller
from ftcontract import agent_api

# Hard cap on a pcap upload's request body; the stored file's limit is the (smaller,
# configurable) AgentApiSettings.pcap_max_bytes, answered with 413 as well.
PCAP_REQUEST_CAP = 32 * 1024 * 1024
# Points further in the future than this are a wrong clock, not a measurement.
MAX_CLOCK_SKEW_S = 300.0


NodeDep: TypeAlias = NamedDependency[NodeCaller]


def _check_points(points: list[agent_api.MetricPoint], api: AgentApi) -> None:
    if len(points) > api.settings.max_points_per_post:
        raise PayloadTooLarge(
            f"points: at most {api.settings.max_points_per_post} per post; send several"
        )
    latest = time.time() + MAX_CLOCK_SKEW_S
    for i, p in enumerate(points):
        if not (math.isfinite(p.ts) and 0 < p.ts <= latest):
            raise InvalidValue(f"points[{i}].ts", "not a plausible Unix time (clock skew?)")
        for name in ("pps", "bps", "dropped_pps", "dropped_bps"):
            value = getattr(p, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidValue(f"points[{i}].{name}", "must be a finite number >= 0")


class AgentController(Controller):
    path = "/api/v1/agent"
    tags = ["agent"]
    # One dependency only: with two, Litestar resolves them in an anyio task group,
    # which costs more than the whole metrics handler.
    dependencies = {"node": Provide(provide_node)}
    # Credentials are checked before the body is read (see control.core.auth).
    guards = [node_guard]

    @post("/heartbeat", status_code=200, summary="Agent heartbeat (liveness and state)")
    async def heartbeat(
        self,
        data: JSONBody[agent_api.Heartbeat],
        node: NodeDep,
        db: Db,
        node_policy: NodePolicyDep,
    ) -> agent_api.HeartbeatReply:
        version, pending = await node_control.record_heartbeat(db, node, data)
        detail = await node_store.get_node(db, node.workspace_id, node.node_uuid, node_policy)
        return agent_api.HeartbeatReply(
            ok=True, status=detail.status, config_version=version, pending_commands=pending
        )

    @get("/config", summary="Overrides and pending operator commands for this node")
    async def config(self, node: NodeDep, db: Db) -> agent_api.AgentConfigReply:
        return agent_api.AgentConfigReply(ok=True, config=await node_control.agent_config(db, node))

    @post("/commands/ack", status_code=200, summary="Results of applied commands")
    async def ack(
        self, data: JSONBody[agent_api.CommandAcks], node: NodeDep, db: Db
    ) -> agent_api.OkReply:
        done = await node_control.record_acks(db, node, data.acks)
        return agent_api.OkReply(ok=True, accepted=done)

    @post("/metrics", status_code=200, summary="A batch of one-second metric points")
    async def metrics(
        self, data: JSONBody[agent_api.MetricsBatch], node: NodeDep, state: State
    ) -> agent_api.MetricsReply:
        agentapi = agentapi_of(state)
        _check_points(data.points, agentapi)
        try:
            # Answered once the points are written: an acknowledged point is never lost.
            await agentapi.metrics.commit(node.node_id, data.points)
        except Overloaded as exc:
            raise ServiceBusy(str(exc)) from exc
        live_hub_of(state).publish_points(node.workspace_id, node.node_uuid, data.points)
        upstream_of(state).on_points(node, data.points)  # automatic BGP escalation, if any
        fleet = fleet_of(state)
        fleet.on_points(node, data.points)  # fleet detection: memory only
        return agent_api.MetricsReply(
            ok=True, accepted=len(data.points), fleet_version=fleet.version(node.node_id)
        )

    @post(
        "/incidents",
        summary="Open an incident (idempotent on the agent's uuid)",
        # 201 when the incident is new; a resend of the same open answers 200, created false
        responses={
            200: ResponseSpec(
                data_container=agent_api.IncidentReply,
                description="The incident was already open (a resend): nothing created",
                generate_examples=False,
            )
        },
    )
    async def open_incident(
        self, data: JSONBody[agent_api.IncidentOpen], node: NodeDep, state: State
    ) -> Response[agent_api.IncidentReply]:
        incident, created = await agentapi_of(state).reports.open(node, data)
        reply = agent_api.IncidentReply(
            ok=True, uuid=incident.uuid, status=incident.status, created=created
        )
        return Response(reply, status_code=201 if created else 200)

    @post("/incidents/{incident_uuid:str}", status_code=200, summary="Update an incident")
    async def update_incident(
        self,
        incident_uuid: FromPath[str],
        data: JSONBody[agent_api.IncidentUpdate],
        node: NodeDep,
        state: State,
    ) -> agent_api.IncidentReply:
        incident, _ = await agentapi_of(state).reports.update(node, incident_uuid, data.figures)
        return agent_api.IncidentReply(ok=True, uuid=incident.uuid, status=incident.status)

    @post(
        "/incidents/{incident_uuid:str}/resolve",
        status_code=200,
        summary="The attack is over (idempotent)",
    )
    async def resolve_incident(
        self,
        incident_uuid: FromPath[str],
        data: JSONBody[agent_api.IncidentResolve],
        node: NodeDep,
        state: State,
    ) -> agent_api.IncidentReply:
        reports = agentapi_of(state).reports
        incident = await reports.resolve(node, incident_uuid, data)
        return agent_api.IncidentReply(ok=True, uuid=incident.uuid, status=incident.status)

    @post(
        "/incidents/{incident_uuid:str}/pcap",
        status_code=200,
        request_max_body_size=PCAP_REQUEST_CAP,
        summary="Upload the incident's pcap (multipart field `file`)",
    )
    async def upload_pcap(
        self,
        incident_uuid: FromPath[str],
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
        node: NodeDep,
        state: State,
    ) -> agent_api.PcapReply:
        agentapi = agentapi_of(state)
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidValue("file", "multipart field `file` with the pcap is required")
        incident_id, _, _ = await agentapi.reports.owned(node, incident_uuid)
        content = await upload.read()
        if len(content) > agentapi.settings.pcap_max_bytes:
            raise PayloadTooLarge(
                f"file: larger than the {agentapi.settings.pcap_max_bytes} byte limit"
            )
        stored = await agentapi.pcaps.store(incident_id, incident_uuid, content)
        return agent_api.PcapReply(ok=True, sha256=stored.sha256, size=stored.size)

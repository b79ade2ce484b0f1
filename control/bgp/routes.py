"""REST API v1 upstream mitigation: escalate an incident, list / withdraw announcements,
the speaker's BGP sessions. Without --bgp-config every one answers 409 "BGP is not
configured" (after the id checks: another workspace's id is still a 404)."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody

from control.bgp.lifespan import upstream_of
from control.bgp.schemas import AnnouncementKind, BgpPeer, UpstreamAnnouncement, UpstreamRefusal
from control.core import validation
from control.core.api_types import RowId
from control.core.deps import CallerDep


class EscalateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    action: AnnouncementKind  # flowspec: rules from the incident's vectors; rtbh: blackhole


class EscalateReply(msgspec.Struct, kw_only=True):
    ok: bool
    announcements: list[UpstreamAnnouncement]  # in force now for this escalation
    refusals: list[UpstreamRefusal]  # parts that could not be announced (also on the incident)


class AnnouncementList(msgspec.Struct, kw_only=True):
    ok: bool
    announcements: list[UpstreamAnnouncement]
    total: int
    limit: int
    offset: int


class AnnouncementOne(msgspec.Struct, kw_only=True):
    ok: bool
    announcement: UpstreamAnnouncement


class PeerList(msgspec.Struct, kw_only=True):
    ok: bool
    peers: list[BgpPeer]


@post(
    "/incidents/{incident_uuid:str}/escalate",
    status_code=200,
    tags=["bgp"],
    summary="Announce the incident upstream: FlowSpec rules or an RTBH route",
)
async def escalate_incident(
    incident_uuid: FromPath[str], data: JSONBody[EscalateRequest], caller: CallerDep, state: State
) -> EscalateReply:
    upstream = upstream_of(state).upstream
    result = await upstream.escalate(caller.workspace_id, incident_uuid, data.action)
    return EscalateReply(ok=True, announcements=result.announced, refusals=result.refusals)


class BgpController(Controller):
    path = "/bgp"
    tags = ["bgp"]

    @get("/announcements", summary="The workspace's BGP announcements, newest first")
    async def list_announcements(
        self,
        caller: CallerDep,
        state: State,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
        in_force: FromQuery[bool | None] = None,
    ) -> AnnouncementList:
        validation.page(limit, offset)
        items, total = await upstream_of(state).upstream.announcements(
            caller.workspace_id, in_force=in_force, limit=limit, offset=offset
        )
        return AnnouncementList(
            ok=True, announcements=items, total=total, limit=limit, offset=offset
        )

    @delete(
        "/announcements/{announcement_id:int}",
        status_code=200,
        summary="Withdraw one of the workspace's announcements",
    )
    async def withdraw_announcement(
        self, announcement_id: RowId, caller: CallerDep, state: State
    ) -> AnnouncementOne:
        announcement = await upstream_of(state).upstream.withdraw(
            caller.workspace_id, announcement_id
        )
        return AnnouncementOne(ok=True, announcement=announcement)

    @get("/peers", summary="The BGP sessions of ftcontrol's speaker")
    async def list_peers(self, caller: CallerDep, state: State) -> PeerList:
        return PeerList(ok=True, peers=upstream_of(state).upstream.peers())

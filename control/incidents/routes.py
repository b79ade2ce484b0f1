"""REST API v1 incidents: list with filters, read, an operator's status change, the
incident's pcap (uploaded by the agent, kept by control.agentapi.pcaps) and its node's
traffic over it (control.incidents.timeline)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, patch
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import File

from control.agentapi.runtime import agentapi_of
from control.core import validation
from control.core.deps import CallerDep, Db, IncidentsDep
from control.incidents.schemas import Incident, IncidentListItem, IncidentScope, IncidentStatus
from control.incidents.service import IncidentFilters
from control.incidents.timeline import IncidentTimeline, incident_timeline
from ftcontract.vocabulary import Severity


class IncidentList(msgspec.Struct, kw_only=True):
    ok: bool
    incidents: list[IncidentListItem]
    total: int
    limit: int
    offset: int


class IncidentOne(msgspec.Struct, kw_only=True):
    ok: bool
    incident: Incident


class IncidentStatusChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Our addition to the reference: an operator closes an incident."""

    status: Literal["resolved", "false_positive"]


class IncidentsController(Controller):
    path = "/incidents"
    tags = ["incidents"]

    @get(summary="List incidents, newest first")
    async def list_incidents(
        self,
        caller: CallerDep,
        incidents: IncidentsDep,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
        status: FromQuery[IncidentStatus | None] = None,
        severity: FromQuery[Severity | None] = None,
        node: FromQuery[str | None] = None,
        # `scope` is the name Litestar reserves for the ASGI scope (errors still say "scope")
        scope_: Annotated[IncidentScope | None, QueryParameter(name="scope")] = None,
    ) -> IncidentList:
        validation.page(limit, offset)
        filters = IncidentFilters(status=status, severity=severity, node_uuid=node, scope=scope_)
        items, total = await incidents.list(
            caller.workspace_id, filters, limit=limit, offset=offset
        )
        return IncidentList(ok=True, incidents=items, total=total, limit=limit, offset=offset)

    @get("/{incident_uuid:str}", summary="Get an incident in full")
    async def get_incident(
        self, incident_uuid: FromPath[str], caller: CallerDep, incidents: IncidentsDep
    ) -> IncidentOne:
        return IncidentOne(
            ok=True, incident=await incidents.get(caller.workspace_id, incident_uuid)
        )

    @patch("/{incident_uuid:str}", summary="Mark an incident resolved or false_positive")
    async def update_incident(
        self,
        incident_uuid: FromPath[str],
        data: JSONBody[IncidentStatusChange],
        caller: CallerDep,
        incidents: IncidentsDep,
    ) -> IncidentOne:
        incident = await incidents.set_status(caller.workspace_id, incident_uuid, data.status)
        return IncidentOne(ok=True, incident=incident)

    @get("/{incident_uuid:str}/pcap", summary="Download the incident's pcap")
    async def download_pcap(
        self, incident_uuid: FromPath[str], caller: CallerDep, state: State
    ) -> File:
        stored = await agentapi_of(state).pcaps.find(caller.workspace_id, incident_uuid)
        return File(
            path=stored.path,
            filename=f"{incident_uuid}.pcap",
            media_type="application/vnd.tcpdump.pcap",
            headers={"X-Content-SHA256": stored.sha256},
        )

    @get(
        "/{incident_uuid:str}/timeline",
        summary="The node's traffic over the incident: one-second points while kept (1 h), "
        "one-minute roll-ups before",
    )
    async def get_timeline(
        self, incident_uuid: FromPath[str], caller: CallerDep, db: Db, state: State
    ) -> IncidentTimeline:
        retention = agentapi_of(state).settings.raw_retention_s
        return await incident_timeline(db, caller.workspace_id, incident_uuid, retention)

"""The incident write path (open, update, resolve, operator status) and incident reads.

Every change commits first and then publishes an `IncidentEvent` on the app's
`IncidentEvents` bus, carrying the incident as `GET /api/v1/incidents/{uuid}` shows it.
Callers (the REST API, the Agent API, tests) all go through `IncidentService`.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any, Literal

import aiosqlite
import msgspec

from control.bgp import store as bgp_store
from control.core import clock
from control.core.db import SqlParams, transaction
from control.core.errors import Conflict, InvalidValue, NotFound
from control.incidents import fleet
from control.incidents.event_bus import IncidentEvent, IncidentEventKind, IncidentEvents
from control.incidents.fleet import ActiveFleetIncident, FleetFigures, FleetNodeFigures
from control.incidents.geo import with_countries
from control.incidents.representation import (
    SELECT_DETAIL,
    SELECT_LIST_ITEM,
    fleet_nodes_of,
    incident_from_row,
    list_item_from_row,
)
from control.incidents.schemas import (
    Incident,
    IncidentListItem,
    IncidentScope,
    IncidentStatus,
    MitigationRule,
    TopSource,
)

# The families the agent's classifier names are the only ones an incident may carry.
from ftcontract import agent_api
from ftcontract.vocabulary import FAMILIES, ResolveReason, Severity, severity_rank


class IncidentReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What opens an incident (from an agent, or a test through the store layer)."""

    family: str
    severity: Severity
    subtype: str | None = None
    started_at: float | None = None  # epoch seconds; default: now
    peak_pps: float = 0
    peak_bps: float = 0
    peak_burst_pps: float = 0
    peak_burst_bps: float = 0
    protocols: dict[str, float] = {}
    top_sources: list[TopSource] = []
    mitigation_rules: list[MitigationRule] = []
    # distinct sources seen; stored as at least len(top_sources) (each is a distinct source)
    source_count: int = 0
    # the agent's rules with their structured match fields (FlowSpec is built from these)
    rule_figures: list[agent_api.RuleFigure] = []
    # severity judged on the confirming window alone: its first change is a refinement
    severity_provisional: bool = False


class IncidentChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A progress report on an active incident; None leaves a field as it is.

    Peaks and the source count only rise (the stored value is the maximum seen); lists
    replace the stored ones.
    """

    family: str | None = None
    subtype: str | None = None
    severity: Severity | None = None
    peak_pps: float | None = None
    peak_bps: float | None = None
    peak_burst_pps: float | None = None
    peak_burst_bps: float | None = None
    protocols: dict[str, float] | None = None
    top_sources: list[TopSource] | None = None
    mitigation_rules: list[MitigationRule] | None = None
    source_count: int | None = None
    rule_figures: list[agent_api.RuleFigure] | None = None
    severity_provisional: bool | None = None


# Aliases: inside IncidentService, `list` is its method.
FleetNodes = list[FleetNodeFigures]
ActiveFleetIncidents = list[ActiveFleetIncident]


class IncidentFilters(msgspec.Struct, kw_only=True):
    status: IncidentStatus | None = None
    severity: Severity | None = None
    node_uuid: str | None = None
    scope: IncidentScope | None = None


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise InvalidValue("family", f"unknown family {family!r}")


def _check_rates(**rates: float | None) -> None:
    for name, value in rates.items():
        if value is not None and value < 0:
            raise InvalidValue(name, "must not be negative")


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode("utf-8")


class IncidentService:
    def __init__(self, db: aiosqlite.Connection, events: IncidentEvents) -> None:
        self.db = db
        self.events = events

    # ---- reads -------------------------------------------------------------------------

    async def get(self, workspace_id: int, incident_uuid: str) -> Incident:
        async with self.db.execute(
            SELECT_DETAIL + " WHERE i.workspace_id = ? AND i.uuid = ?",
            (workspace_id, incident_uuid),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("incident not found")
        nodes = await fleet_nodes_of(self.db, [row["id"]]) if row["scope"] == "fleet" else {}
        incident = incident_from_row(row, clock.now(), nodes.get(row["id"]))
        incident.announcements = await bgp_store.incident_announcements(self.db, row["id"])
        incident.upstream_refusals = await bgp_store.incident_refusals(self.db, row["id"])
        return incident

    async def list(
        self, workspace_id: int, filters: IncidentFilters, *, limit: int, offset: int
    ) -> tuple[list[IncidentListItem], int]:
        where = ["i.workspace_id = ?"]
        args: list[Any] = [workspace_id]
        if filters.status is not None:
            where.append("i.status = ?")
            args.append(filters.status)
        if filters.severity is not None:
            where.append("i.severity = ?")
            args.append(filters.severity)
        if filters.scope is not None:
            where.append("i.scope = ?")
            args.append(filters.scope)
        if filters.node_uuid is not None:
            # Deleted nodes included: their incident history stays readable.
            async with self.db.execute(
                "SELECT id FROM nodes WHERE workspace_id = ? AND uuid = ?",
                (workspace_id, filters.node_uuid),
            ) as cur:
                node = await cur.fetchone()
            if node is None:
                raise NotFound("node not found")
            where.append("i.node_id = ?")
            args.append(node["id"])
        clause = " WHERE " + " AND ".join(where)
        async with self.db.execute(
            "SELECT count(*) FROM incidents i" + clause,  # noqa: S608 (clause: fixed fragments)
            args,
        ) as cur:
            total_row = await cur.fetchone()
        total = int(total_row[0]) if total_row else 0
        # Page over the index alone, then join only the rows of the page: a deep OFFSET
        # then skips index entries instead of whole rows.
        order = " ORDER BY i.started_at DESC, i.id DESC"
        page = f"SELECT i.id FROM incidents i{clause}{order} LIMIT ? OFFSET ?"  # noqa: S608
        async with self.db.execute(
            f"{SELECT_LIST_ITEM} WHERE i.id IN ({page}){order}", [*args, limit, offset]
        ) as cur:
            rows = await cur.fetchall()
        now = clock.now()
        nodes = await fleet_nodes_of(self.db, [r["id"] for r in rows if r["scope"] == "fleet"])
        return [list_item_from_row(r, now, nodes.get(r["id"])) for r in rows], total

    # ---- writes ------------------------------------------------------------------------

    async def open(
        self,
        workspace_id: int,
        node_uuid: str,
        report: IncidentReport,
        *,
        incident_uuid: str | None = None,
    ) -> Incident:
        _check_family(report.family)
        _check_rates(
            peak_pps=report.peak_pps,
            peak_bps=report.peak_bps,
            peak_burst_pps=report.peak_burst_pps,
            peak_burst_bps=report.peak_burst_bps,
            source_count=report.source_count,
        )
        now = clock.now()
        started = report.started_at if report.started_at is not None else now
        new_uuid = incident_uuid or str(uuidlib.uuid4())
        sources = _json(with_countries(report.top_sources))  # geo lookups outside the lock
        async with transaction(self.db) as db:
            async with db.execute(
                "SELECT id, ip FROM nodes "
                "WHERE workspace_id = ? AND uuid = ? AND deleted_at IS NULL",
                (workspace_id, node_uuid),
            ) as cur:
                node = await cur.fetchone()
            if node is None:
                raise NotFound("node not found")
            # Opening during a fleet incident of one of the node's groups: part of it.
            fleet_id = await fleet.fleet_incident_for_node(db, workspace_id, node["ip"])
            try:
                await db.execute(
                    """INSERT INTO incidents (uuid, workspace_id, node_id, family, subtype,
                           severity, status, started_at, mitigated_at, peak_pps, peak_bps,
                           peak_burst_pps, peak_burst_bps, source_count, protocols,
                           top_sources, mitigation_rules, rule_figures, updated_at,
                           fleet_incident_id, severity_provisional)
                       VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                               ?, ?)""",
                    (
                        new_uuid,
                        workspace_id,
                        node["id"],
                        report.family,
                        report.subtype,
                        report.severity,
                        started,
                        now if report.mitigation_rules else None,
                        report.peak_pps,
                        report.peak_bps,
                        report.peak_burst_pps,
                        report.peak_burst_bps,
                        max(report.source_count, len(report.top_sources)),
                        _json(report.protocols),
                        sources,
                        _json(report.mitigation_rules),
                        _json(report.rule_figures),
                        now,
                        fleet_id,
                        int(report.severity_provisional),
                    ),
                )
            except aiosqlite.IntegrityError as exc:
                raise Conflict("incident uuid already exists") from exc
        return await self._publish("opened", workspace_id, new_uuid)

    async def update(
        self, workspace_id: int, incident_uuid: str, change: IncidentChange
    ) -> Incident:
        if change.family is not None:
            _check_family(change.family)
        _check_rates(
            peak_pps=change.peak_pps,
            peak_bps=change.peak_bps,
            peak_burst_pps=change.peak_burst_pps,
            peak_burst_bps=change.peak_burst_bps,
            source_count=change.source_count,
        )
        sources = None if change.top_sources is None else _json(with_countries(change.top_sources))
        async with transaction(self.db):
            row = await self._row_for_write(workspace_id, incident_uuid)
            if row["status"] != "active":
                raise Conflict(f"incident is {row['status']}, not active")
            sets: SqlParams = {"updated_at": clock.now()}
            if change.family is not None:
                sets["family"] = change.family
            if change.subtype is not None:
                sets["subtype"] = change.subtype
            if change.severity is not None:
                sets["severity"] = change.severity
            if change.severity_provisional is not None:
                sets["severity_provisional"] = int(change.severity_provisional)
            for peak in ("peak_pps", "peak_bps", "peak_burst_pps", "peak_burst_bps"):
                value = getattr(change, peak)
                if value is not None:
                    sets[peak] = max(row[peak], value)
            if change.protocols is not None:
                sets["protocols"] = _json(change.protocols)
            if sources is not None:
                sets["top_sources"] = sources
            seen = max(
                change.source_count or 0,
                len(change.top_sources) if change.top_sources is not None else 0,
            )
            if seen > row["source_count"]:
                sets["source_count"] = seen
            if change.rule_figures is not None:
                sets["rule_figures"] = _json(change.rule_figures)
            if change.mitigation_rules is not None:
                sets["mitigation_rules"] = _json(change.mitigation_rules)
                if change.mitigation_rules and row["mitigated_at"] is None:
                    sets["mitigated_at"] = sets["updated_at"]
            await self._set(row["id"], sets)
        # A provisional severity (judged on the confirming window alone) that the agent
        # settles higher is a refinement of the opening, told once: no "escalated".
        escalated = (
            change.severity is not None
            and severity_rank(change.severity) > severity_rank(row["severity"])
            and not row["severity_provisional"]
        )
        return await self._publish(
            "escalated" if escalated else "updated", workspace_id, incident_uuid
        )

    async def resolve(
        self,
        workspace_id: int,
        incident_uuid: str,
        *,
        ended_at: float | None = None,
        reason: ResolveReason | None = None,
    ) -> Incident:
        """The attack ended: the agent says why (`reason`); None when no agent did (the node
        was deleted). Idempotent: a closed incident is returned as is."""
        async with transaction(self.db):
            row = await self._row_for_write(workspace_id, incident_uuid)
            closed = row["status"] != "active"
            if not closed:
                now = clock.now()
                end = max(ended_at if ended_at is not None else now, row["started_at"])
                await self._set(
                    row["id"],
                    {
                        "status": "resolved",
                        "ended_at": end,
                        "end_reason": reason,
                        "updated_at": now,
                    },
                )
        if closed:
            return await self.get(workspace_id, incident_uuid)
        return await self._publish("resolved", workspace_id, incident_uuid)

    # ---- fleet incidents (written by the fleet engine, control.fleet) --------------------

    async def open_fleet(
        self,
        workspace_id: int,
        group_key: str,
        started_at: float,
        figures: FleetFigures,
        *,
        nodes: FleetNodes | None = None,
    ) -> Incident:
        """A group's summed traffic confirmed an attack: event "opened". `nodes` (optional)
        are written in the same transaction, so the opening notice names them.
        Conflict when the group already has an active fleet incident."""
        fleet.check_group(group_key)
        _check_family(figures.family)
        fleet.check_figures(figures)
        fleet.check_nodes(nodes or [])
        now = clock.now()
        new_uuid = str(uuidlib.uuid4())
        async with transaction(self.db) as db:
            incident_id = await fleet.insert_fleet(
                db, workspace_id, group_key, started_at, figures, new_uuid, now
            )
            in_force = await fleet.upsert_nodes(db, workspace_id, incident_id, nodes or [], now)
            if in_force is not None:
                await self._set(incident_id, {"mitigated_at": in_force})
        return await self._publish("opened", workspace_id, new_uuid)

    async def update_fleet(
        self, workspace_id: int, incident_uuid: str, figures: FleetFigures
    ) -> Incident:
        """New figures for an active fleet incident: event "escalated" when the severity
        rose, else "updated". Peaks only rise."""
        _check_family(figures.family)
        fleet.check_figures(figures)
        async with transaction(self.db):
            row = await fleet.fleet_row(self.db, workspace_id, incident_uuid)
            if row["status"] != "active":
                raise Conflict(f"incident is {row['status']}, not active")
            sets: SqlParams = {**fleet.figure_sets(row, figures), "updated_at": clock.now()}
            await self._set(row["id"], sets)
        escalated = severity_rank(figures.severity) > severity_rank(row["severity"])
        return await self._publish(
            "escalated" if escalated else "updated", workspace_id, incident_uuid
        )

    async def set_fleet_nodes(
        self, workspace_id: int, incident_uuid: str, nodes: FleetNodes
    ) -> None:
        """The nodes' shares, peaks, states and reported rules (no event: they change every
        second). Nodes not listed keep what is stored. Also after the resolve (the last
        counters)."""
        fleet.check_nodes(nodes)
        async with transaction(self.db) as db:
            row = await fleet.fleet_row(db, workspace_id, incident_uuid)
            now = clock.now()
            in_force = await fleet.upsert_nodes(db, workspace_id, row["id"], nodes, now)
            if in_force is not None and row["mitigated_at"] is None:
                await self._set(row["id"], {"mitigated_at": in_force, "updated_at": now})

    async def resolve_fleet(
        self, workspace_id: int, incident_uuid: str, ended_at: float
    ) -> Incident:
        """The group's sum stayed below threshold for the cool-down: event "resolved".
        Idempotent: a closed fleet incident is returned as is."""
        async with transaction(self.db):
            row = await fleet.fleet_row(self.db, workspace_id, incident_uuid)
            closed = row["status"] != "active"
            if not closed:
                now = clock.now()
                await self._set(
                    row["id"],
                    {
                        "status": "resolved",
                        "ended_at": max(ended_at, row["started_at"]),
                        "end_reason": "cooled_down",
                        "updated_at": now,
                    },
                )
        if closed:
            return await self.get(workspace_id, incident_uuid)
        return await self._publish("resolved", workspace_id, incident_uuid)

    async def active_fleet(self) -> ActiveFleetIncidents:
        """Every workspace's active fleet incidents: what a restarted engine resumes."""
        return await fleet.active_fleet(self.db)

    async def resolve_all_of_node(self, workspace_id: int, node_uuid: str) -> int:
        """Resolve every active incident of a node (used when it is deleted); returns how many."""
        async with self.db.execute(
            """SELECT i.uuid FROM incidents i JOIN nodes n ON n.id = i.node_id
               WHERE i.workspace_id = ? AND n.uuid = ? AND i.status = 'active'""",
            (workspace_id, node_uuid),
        ) as cur:
            uuids = [row["uuid"] for row in await cur.fetchall()]
        for incident_uuid in uuids:
            await self.resolve(workspace_id, incident_uuid)
        return len(uuids)

    async def set_status(
        self,
        workspace_id: int,
        incident_uuid: str,
        status: Literal["resolved", "false_positive"],
    ) -> Incident:
        """An operator closes an incident: resolved, or false_positive (also after resolve).

        Setting the status it already has changes nothing; a false positive stays one.
        """
        async with transaction(self.db):
            row = await self._row_for_write(workspace_id, incident_uuid)
            if row["status"] == status:
                changed = False
            elif row["status"] == "false_positive":
                raise Conflict("incident is marked false_positive; it cannot be resolved")
            else:
                changed = True
                now = clock.now()
                end = row["ended_at"] if row["ended_at"] is not None else now
                await self._set(row["id"], {"status": status, "ended_at": end, "updated_at": now})
        if not changed:
            return await self.get(workspace_id, incident_uuid)
        return await self._publish(status, workspace_id, incident_uuid)

    # ---- helpers -----------------------------------------------------------------------

    async def _row_for_write(self, workspace_id: int, incident_uuid: str) -> aiosqlite.Row:
        async with self.db.execute(
            "SELECT * FROM incidents WHERE workspace_id = ? AND uuid = ?",
            (workspace_id, incident_uuid),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound("incident not found")
        return row

    async def _set(self, incident_id: int, sets: SqlParams) -> None:
        # Column names come from this module only, never from input.
        assignments = ", ".join(f"{column} = ?" for column in sets)
        await self.db.execute(
            f"UPDATE incidents SET {assignments} WHERE id = ?",  # noqa: S608
            [*sets.values(), incident_id],
        )

    async def _publish(
        self, kind: IncidentEventKind, workspace_id: int, incident_uuid: str
    ) -> Incident:
        incident = await self.get(workspace_id, incident_uuid)
        await self.events.publish(
            IncidentEvent(
                kind=kind,
                workspace_id=workspace_id,
                incident_uuid=incident_uuid,
                incident=incident,
            )
        )
        return incident

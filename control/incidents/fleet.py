"""Fleet incidents in the store: what the fleet engine (control.fleet) writes through
`IncidentService.open_fleet / update_fleet / set_fleet_nodes / resolve_fleet`, and what a
restarted engine resumes (`active_fleet`).

A fleet incident is an `incidents` row with scope 'fleet', node_id NULL and `group_key`
(a declared prefix of the workspace in canonical form, or 'workspace'); its nodes are
rows of fleet_incident_nodes. The SQL is here; the service commits and publishes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite
import msgspec

from control.core.errors import Conflict, InvalidValue, NotFound
from control.incidents.schemas import MitigationRule
from ftcontract import agent_api
from ftcontract.vocabulary import Family, Severity

WORKSPACE_GROUP = "workspace"  # the group of every node of the workspace


@dataclass(frozen=True, slots=True)
class FleetFigures:
    """What the engine knows of a group's attack (from the group's summed seconds)."""

    family: Family
    subtype: str
    severity: Severity
    peak_pps: float
    peak_bps: float
    current_pps: float
    protocols: dict[str, float]  # percent shares of the group's attack
    vectors: list[agent_api.FleetVector]  # stored in fleet_vectors (what nodes are ordered)
    rules: list[agent_api.RuleFigure]  # the signature rules pushed (one per vector)
    # Not stored (no column, as for node incidents): the engine's own record.
    threshold_pps: float | None = None
    baseline_p99_pps: float | None = None


@dataclass(frozen=True, slots=True)
class FleetNodeFigures:
    """One node of the group: its share of the attack, its peaks, its state, and the
    fleet rules it reported for this incident."""

    node_id: int
    share: float
    peak_pps: float
    peak_bps: float
    state: Literal["reporting", "missing", "removed"]
    report: agent_api.FleetRuleReport | None = None  # None: leave rules/counters as stored


@dataclass(frozen=True, slots=True)
class ActiveFleetIncident:
    """An active fleet incident as a restarted engine resumes it."""

    id: int
    uuid: str
    workspace_id: int
    group_key: str
    family: Family
    vectors: list[agent_api.FleetVector]
    started_at: float
    severity: Severity
    peak_pps: float
    peak_bps: float


def check_group(group_key: str) -> None:
    """'workspace' or a prefix in canonical form (what control.bgp.prefixes stores)."""
    if group_key == WORKSPACE_GROUP:
        return
    try:
        network = ipaddress.ip_network(group_key, strict=True)
    except ValueError as exc:
        raise InvalidValue("group", f"not a prefix nor 'workspace': {group_key!r}") from exc
    if str(network) != group_key:
        raise InvalidValue("group", f"not in canonical form: {group_key!r} (say {network})")


def check_figures(figures: FleetFigures) -> None:
    for name in ("peak_pps", "peak_bps", "current_pps"):
        if getattr(figures, name) < 0:
            raise InvalidValue(name, "must not be negative")


def check_nodes(nodes: list[FleetNodeFigures]) -> None:
    for n in nodes:
        if not 0 <= n.share <= 1:
            raise InvalidValue("share", "must be between 0 and 1")
        if n.peak_pps < 0 or n.peak_bps < 0:
            raise InvalidValue("peak_pps", "must not be negative")


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode("utf-8")


async def insert_fleet(
    db: aiosqlite.Connection,
    workspace_id: int,
    group_key: str,
    started_at: float,
    figures: FleetFigures,
    new_uuid: str,
    now: float,
) -> int:
    """Inside the caller's transaction; Conflict when the group already has one active."""
    async with db.execute(
        "SELECT uuid FROM incidents WHERE workspace_id = ? AND scope = 'fleet' "
        "AND group_key = ? AND status = 'active'",
        (workspace_id, group_key),
    ) as cur:
        active = await cur.fetchone()
    if active is not None:
        raise Conflict(f"group {group_key} already has an active fleet incident")
    cur = await db.execute(
        """INSERT INTO incidents (uuid, workspace_id, node_id, scope, group_key, family,
               subtype, severity, status, started_at, peak_pps, peak_bps, protocols,
               mitigation_rules, rule_figures, fleet_vectors, updated_at)
           VALUES (?, ?, NULL, 'fleet', ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            new_uuid,
            workspace_id,
            group_key,
            figures.family,
            figures.subtype or None,
            figures.severity,
            started_at,
            figures.peak_pps,
            figures.peak_bps,
            _json(figures.protocols),
            _json([MitigationRule.from_figure(r) for r in figures.rules]),
            _json(figures.rules),
            _json(figures.vectors),
            now,
        ),
    )
    assert cur.lastrowid is not None  # an INSERT always has one
    return cur.lastrowid


async def fleet_row(
    db: aiosqlite.Connection, workspace_id: int, incident_uuid: str
) -> aiosqlite.Row:
    async with db.execute(
        "SELECT * FROM incidents WHERE workspace_id = ? AND uuid = ? AND scope = 'fleet'",
        (workspace_id, incident_uuid),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise NotFound("fleet incident not found")
    return row


def figure_sets(row: aiosqlite.Row, figures: FleetFigures) -> dict[str, Any]:
    """The columns an update writes: peaks only rise; the rest is the engine's latest."""
    return {
        "family": figures.family,
        "subtype": figures.subtype or None,
        "severity": figures.severity,
        "peak_pps": max(row["peak_pps"], figures.peak_pps),
        "peak_bps": max(row["peak_bps"], figures.peak_bps),
        "protocols": _json(figures.protocols),
        "mitigation_rules": _json([MitigationRule.from_figure(r) for r in figures.rules]),
        "rule_figures": _json(figures.rules),
        "fleet_vectors": _json(figures.vectors),
    }


async def upsert_nodes(
    db: aiosqlite.Connection,
    workspace_id: int,
    incident_id: int,
    nodes: list[FleetNodeFigures],
    now: float,
) -> float | None:
    """Write the nodes' rows (inside the caller's transaction). Nodes not listed keep their
    rows. Returns the earliest in_force_since reported (the incident's mitigated_at)."""
    if not nodes:
        return None
    ids = sorted({n.node_id for n in nodes})
    marks = ", ".join("?" * len(ids))
    async with db.execute(
        f"SELECT id FROM nodes WHERE workspace_id = ? AND id IN ({marks})",  # noqa: S608
        [workspace_id, *ids],
    ) as cur:
        known = {r["id"] for r in await cur.fetchall()}
    for n in nodes:
        if n.node_id not in known:
            raise InvalidValue("node_id", f"no node {n.node_id} in this workspace")
    # Two statements for all the nodes (the engine writes every node of a group each
    # second during an incident): one round trip each to the database thread.
    await db.executemany(
        """INSERT INTO fleet_incident_nodes (incident_id, node_id, share, peak_pps,
               peak_bps, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (incident_id, node_id) DO UPDATE SET share = excluded.share,
               peak_pps = max(peak_pps, excluded.peak_pps),
               peak_bps = max(peak_bps, excluded.peak_bps),
               state = excluded.state, updated_at = excluded.updated_at""",
        [(incident_id, n.node_id, n.share, n.peak_pps, n.peak_bps, n.state, now) for n in nodes],
    )
    reports = [(n.node_id, n.report) for n in nodes if n.report is not None]
    # Counters are cumulative per rule; a restarted agent starts them again from 0, so the
    # stored totals never go down.
    await db.executemany(
        """UPDATE fleet_incident_nodes SET rules = ?,
               dropped_packets = max(dropped_packets, ?),
               spared_packets = max(spared_packets, ?),
               in_force_since = coalesce(in_force_since, ?)
           WHERE incident_id = ? AND node_id = ?""",
        [
            (
                _json(report.rules),
                sum(r.dropped_packets for r in report.rules),
                sum(r.spared_packets for r in report.rules),
                report.in_force_since if report.rules else None,
                incident_id,
                node_id,
            )
            for node_id, report in reports
        ],
    )
    since = [
        report.in_force_since
        for _, report in reports
        if report.rules and report.in_force_since is not None
    ]
    return min(since) if since else None


async def active_fleet(db: aiosqlite.Connection) -> list[ActiveFleetIncident]:
    async with db.execute(
        """SELECT id, uuid, workspace_id, group_key, family, fleet_vectors, started_at,
                  severity, peak_pps, peak_bps
           FROM incidents WHERE scope = 'fleet' AND status = 'active' ORDER BY id"""
    ) as cur:
        rows = await cur.fetchall()
    return [
        ActiveFleetIncident(
            id=r["id"],
            uuid=r["uuid"],
            workspace_id=r["workspace_id"],
            group_key=r["group_key"],
            family=r["family"],
            vectors=msgspec.json.decode(r["fleet_vectors"], type=list[agent_api.FleetVector]),
            started_at=r["started_at"],
            severity=r["severity"],
            peak_pps=r["peak_pps"],
            peak_bps=r["peak_bps"],
        )
        for r in rows
    ]


def node_in_group(node_ip: str, group_key: str) -> bool:
    if group_key == WORKSPACE_GROUP:
        return True
    try:
        return ipaddress.ip_address(node_ip) in ipaddress.ip_network(group_key)
    except ValueError:
        return False


async def fleet_incident_for_node(
    db: aiosqlite.Connection, workspace_id: int, node_ip: str
) -> int | None:
    """The active fleet incident of one of the node's groups (the newest), if any: a node
    incident opening now links to it."""
    async with db.execute(
        "SELECT id, group_key FROM incidents WHERE workspace_id = ? AND scope = 'fleet' "
        "AND status = 'active' ORDER BY started_at DESC, id DESC",
        (workspace_id,),
    ) as cur:
        rows = await cur.fetchall()
    for r in rows:
        if node_in_group(node_ip, r["group_key"]):
            return int(r["id"])
    return None

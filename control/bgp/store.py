"""Announcements and refusals in SQLite (table bgp_announcements, bgp_refusals).

`SqliteLedger` is the engine's ledger: each announcement is one row with its match fields
in columns (never a command text to parse back); the live rows are those not withdrawn.
The read functions give the REST shapes, always scoped to one workspace.
"""

from __future__ import annotations

import aiosqlite

from control.bgp.announcements import Announcement, FlowSpecRule, Rtbh
from control.bgp.config import parse_community
from control.bgp.ledger import LiveAnnouncement, Owner, Trigger, WithdrawReason
from control.bgp.schemas import AnnouncementKind, UpstreamAnnouncement, UpstreamRefusal
from control.core import clock
from control.core.db import transaction

_COLUMNS = """a.id, a.workspace_id, a.node_id, a.incident_id, a.kind, a.trigger, a.destination,
    a.source, a.protocol, a.src_port, a.dst_port, a.tcp_flags, a.tcp_flags_mask,
    a.packet_length_min, a.packet_length_max, a.action, a.rate_pps, a.next_hop, a.community,
    a.announced_at, a.expires_at, a.withdrawn_at, a.withdraw_reason"""
_VIEW = f"""SELECT {_COLUMNS}, n.uuid AS node_uuid, i.uuid AS incident_uuid
FROM bgp_announcements a LEFT JOIN nodes n ON n.id = a.node_id
LEFT JOIN incidents i ON i.id = a.incident_id"""  # noqa: S608 (fixed fragments)


# A FlowSpec rule's fields, stored one column each under the same names.
FLOWSPEC_COLUMNS: tuple[str, ...] = FlowSpecRule.__struct_fields__


def announcement_from_row(row: aiosqlite.Row) -> Announcement:
    if row["kind"] == "rtbh":
        return Rtbh(
            destination=row["destination"],
            next_hop=row["next_hop"],
            community=parse_community(row["community"], "community"),
        )
    return FlowSpecRule(**{c: row[c] for c in FLOWSPEC_COLUMNS})


def _columns(announcement: Announcement) -> dict[str, str | int | float | None]:
    if isinstance(announcement, Rtbh):
        high, low = announcement.community
        return {
            "kind": "rtbh",
            "destination": announcement.destination,
            "action": "blackhole",
            "next_hop": announcement.next_hop,
            "community": f"{high}:{low}",
        }
    return {"kind": "flowspec", **{c: getattr(announcement, c) for c in FLOWSPEC_COLUMNS}}


class SqliteLedger:
    """The engine's ledger on the control plane's store. Announcements without an owner
    cannot be stored (every announcement of the product belongs to a workspace: to one of
    its nodes, or for a fleet incident to the workspace alone)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def load(self) -> list[LiveAnnouncement]:
        rows = await self.db.execute_fetchall(
            f"SELECT {_COLUMNS} FROM bgp_announcements a WHERE a.withdrawn_at IS NULL"  # noqa: S608
        )
        return [
            LiveAnnouncement(
                id=row["id"],
                announcement=announcement_from_row(row),
                announced_at=row["announced_at"],
                expires_at=row["expires_at"],
                owner=Owner(
                    workspace_id=row["workspace_id"],
                    node_id=row["node_id"],
                    incident_id=row["incident_id"],
                    trigger=row["trigger"],
                ),
            )
            for row in rows
        ]

    async def added(
        self,
        announcement: Announcement,
        owner: Owner | None,
        announced_at: float,
        expires_at: float,
    ) -> int:
        if owner is None:
            raise ValueError("an announcement of the product needs its owner")
        values = {
            **_columns(announcement),
            "workspace_id": owner.workspace_id,
            "node_id": owner.node_id,
            "incident_id": owner.incident_id,
            "trigger": owner.trigger,
            "announced_at": announced_at,
            "expires_at": expires_at,
        }
        names = ", ".join(values)
        marks = ", ".join(f":{name}" for name in values)
        async with transaction(self.db) as db:
            cur = await db.execute(
                f"INSERT INTO bgp_announcements ({names}) VALUES ({marks})",  # noqa: S608
                values,
            )
            new_id = cur.lastrowid
        assert new_id is not None
        return new_id

    async def renewed(self, live: LiveAnnouncement) -> None:
        owner = live.owner
        async with transaction(self.db) as db:
            await db.execute(
                """UPDATE bgp_announcements SET announced_at = ?, expires_at = ?,
                       incident_id = coalesce(?, incident_id), trigger = coalesce(?, trigger)
                   WHERE id = ?""",
                (
                    live.announced_at,
                    live.expires_at,
                    owner.incident_id if owner else None,
                    owner.trigger if owner else None,
                    live.id,
                ),
            )

    async def withdrawn(self, announcement_id: int, reason: WithdrawReason, at: float) -> None:
        async with transaction(self.db) as db:
            await db.execute(
                "UPDATE bgp_announcements SET withdrawn_at = ?, withdraw_reason = ? "
                "WHERE id = ? AND withdrawn_at IS NULL",
                (at, reason, announcement_id),
            )


# ---- reads (REST) ------------------------------------------------------------------------


def view_from_row(row: aiosqlite.Row) -> UpstreamAnnouncement:
    return UpstreamAnnouncement(
        id=row["id"],
        kind=row["kind"],
        node_uuid=row["node_uuid"],
        incident_uuid=row["incident_uuid"],
        trigger=row["trigger"],
        **{c: row[c] for c in FLOWSPEC_COLUMNS},
        next_hop=row["next_hop"],
        community=row["community"],
        announced_at=clock.iso(row["announced_at"]) or "",
        expires_at=clock.iso(row["expires_at"]) or "",
        in_force=row["withdrawn_at"] is None,
        withdrawn_at=clock.iso(row["withdrawn_at"]),
        withdraw_reason=row["withdraw_reason"],
    )


async def workspace_announcements(
    db: aiosqlite.Connection, workspace_id: int, *, in_force: bool | None, limit: int, offset: int
) -> tuple[list[UpstreamAnnouncement], int]:
    """The workspace's announcements, newest first."""
    where = "a.workspace_id = ?"
    if in_force is not None:
        where += " AND a.withdrawn_at IS NULL" if in_force else " AND a.withdrawn_at IS NOT NULL"
    count = await db.execute_fetchall(
        f"SELECT count(*) FROM bgp_announcements a WHERE {where}",  # noqa: S608
        (workspace_id,),
    )
    rows = await db.execute_fetchall(
        f"{_VIEW} WHERE {where} ORDER BY a.id DESC LIMIT ? OFFSET ?",
        (workspace_id, limit, offset),
    )
    return [view_from_row(r) for r in rows], int(next(iter(count))[0])


async def workspace_announcement(
    db: aiosqlite.Connection, workspace_id: int, announcement_id: int
) -> UpstreamAnnouncement | None:
    rows = list(
        await db.execute_fetchall(
            f"{_VIEW} WHERE a.workspace_id = ? AND a.id = ?",
            (workspace_id, announcement_id),
        )
    )
    return view_from_row(rows[0]) if rows else None


async def incident_announcements(
    db: aiosqlite.Connection, incident_id: int
) -> list[UpstreamAnnouncement]:
    rows = await db.execute_fetchall(
        f"{_VIEW} WHERE a.incident_id = ? ORDER BY a.id",
        (incident_id,),
    )
    return [view_from_row(r) for r in rows]


async def incident_refusals(db: aiosqlite.Connection, incident_id: int) -> list[UpstreamRefusal]:
    rows = await db.execute_fetchall(
        "SELECT action, trigger, reason, refused_at FROM bgp_refusals "
        "WHERE incident_id = ? ORDER BY id",
        (incident_id,),
    )
    return [
        UpstreamRefusal(
            action=r["action"],
            trigger=r["trigger"],
            reason=r["reason"],
            refused_at=clock.iso(r["refused_at"]) or "",
        )
        for r in rows
    ]


async def record_refusal(
    db: aiosqlite.Connection,
    workspace_id: int,
    incident_id: int,
    action: AnnouncementKind,
    trigger: Trigger,
    reason: str,
) -> None:
    async with transaction(db) as tx:
        await tx.execute(
            "INSERT INTO bgp_refusals (workspace_id, incident_id, action, trigger, reason, "
            "refused_at) VALUES (?, ?, ?, ?, ?, ?)",
            (workspace_id, incident_id, action, trigger, reason, clock.now()),
        )

"""Upstream mitigation in the product: escalate an incident to FlowSpec or RTBH, withdraw,
and say what is in force. Every read and write is scoped to the caller's workspace.

An escalation builds its announcements from the incident (FlowSpec: the agent's rules with
their structured match fields, aimed at the node's own address; RTBH: the node's /32 or
/128), and the engine announces each one that passes the workspace-prefix check and the
cap. Whatever announced nothing is recorded on the incident (bgp_refusals) with its
reason; when nothing at all was announced the caller gets that reason as an error.
Channels hear of each new announcement and of each withdrawal (event kinds
upstream_announced / upstream_withdrawn on the incident event bus).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiosqlite
import msgspec

from control.bgp import prefixes
from control.bgp import store as bgp_store
from control.bgp.announcements import Announcement
from control.bgp.builder import Refusal, flowspec_for_rules, rtbh_for
from control.bgp.config import BgpConfig
from control.bgp.engine import Accepted, BgpEngine
from control.bgp.errors import NOT_CONFIGURED as NOT_CONFIGURED_REASON
from control.bgp.errors import BgpNotConfigured, EscalationRefused
from control.bgp.ledger import LiveAnnouncement, Owner, Trigger, WithdrawReason
from control.bgp.schemas import AnnouncementKind, BgpPeer, UpstreamAnnouncement, UpstreamRefusal
from control.core import clock
from control.core.errors import Conflict, NotFound
from control.incidents.event_bus import IncidentEvent, IncidentEventKind, IncidentEvents
from control.incidents.service import IncidentService
from ftcontract.agent_api import RuleFigure

log = logging.getLogger("ftcontrol.bgp")


@dataclass(frozen=True, slots=True)
class IncidentTarget:
    """What an escalation needs to know about an incident and its node."""

    incident_id: int
    incident_uuid: str
    status: str
    workspace_id: int
    node_id: int
    node_ip: str
    rule_figures: list[RuleFigure]


class Escalation(msgspec.Struct, kw_only=True):
    announced: list[UpstreamAnnouncement]  # in force now (new, or renewed)
    refusals: list[UpstreamRefusal]  # the parts that could not be announced


_ANSWER_ORDER = ("not_configured", "not_allowed", "cap", "rejected", "not_buildable")

_TARGET = """SELECT i.id, i.uuid, i.status, i.workspace_id, i.rule_figures, n.id AS node_id,
    n.ip AS node_ip
FROM incidents i JOIN nodes n ON n.id = i.node_id"""


def _target_from_row(row: aiosqlite.Row) -> IncidentTarget:
    return IncidentTarget(
        incident_id=row["id"],
        incident_uuid=row["uuid"],
        status=row["status"],
        workspace_id=row["workspace_id"],
        node_id=row["node_id"],
        node_ip=row["node_ip"],
        rule_figures=msgspec.json.decode(row["rule_figures"], type=list[RuleFigure]),
    )


class Upstream:
    def __init__(
        self,
        db: aiosqlite.Connection,
        incidents: IncidentService,
        events: IncidentEvents,
        engine: BgpEngine | None,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.events = events
        self.engine = engine
        if engine is not None:
            engine.on_withdrawn = self._announce_withdrawal

    @property
    def config(self) -> BgpConfig | None:
        return self.engine.config if self.engine is not None else None

    def _engine(self) -> BgpEngine:
        if self.engine is None:
            raise BgpNotConfigured()
        return self.engine

    # ---- reads -------------------------------------------------------------------------

    def peers(self) -> list[BgpPeer]:
        return [
            BgpPeer(
                address=p.address, state=p.state, since=clock.iso(p.since) or "", reason=p.reason
            )
            for p in self._engine().peers()
        ]

    async def announcements(
        self, workspace_id: int, *, in_force: bool | None, limit: int, offset: int
    ) -> tuple[list[UpstreamAnnouncement], int]:
        self._engine()
        return await bgp_store.workspace_announcements(
            self.db, workspace_id, in_force=in_force, limit=limit, offset=offset
        )

    async def target(self, workspace_id: int, incident_uuid: str) -> IncidentTarget:
        rows = list(
            await self.db.execute_fetchall(
                _TARGET + " WHERE i.workspace_id = ? AND i.uuid = ?", (workspace_id, incident_uuid)
            )
        )
        if not rows:
            raise NotFound("incident not found")
        return _target_from_row(rows[0])

    async def active_target(self, node_id: int) -> IncidentTarget | None:
        """The node's newest active incident (automatic escalation)."""
        rows = list(
            await self.db.execute_fetchall(
                _TARGET + " WHERE i.node_id = ? AND i.status = 'active' "
                "ORDER BY i.started_at DESC, i.id DESC LIMIT 1",
                (node_id,),
            )
        )
        return _target_from_row(rows[0]) if rows else None

    def live_of(self, incident_id: int) -> list[LiveAnnouncement]:
        """In force for this incident now."""
        if self.engine is None:
            return []
        return [
            a
            for a in self.engine.live()
            if a.owner is not None and a.owner.incident_id == incident_id
        ]

    # ---- escalate ----------------------------------------------------------------------

    async def escalate(
        self,
        workspace_id: int,
        incident_uuid: str,
        action: AnnouncementKind,
        trigger: Trigger = "manual",
    ) -> Escalation:
        """Announce FlowSpec rules or the RTBH route for an active incident. Raises
        EscalationRefused (recorded on the incident) when nothing was announced."""
        target = await self.target(workspace_id, incident_uuid)
        return await self.escalate_target(target, action, trigger)

    async def escalate_target(
        self, target: IncidentTarget, action: AnnouncementKind, trigger: Trigger
    ) -> Escalation:
        if target.status != "active":
            raise Conflict(f"incident is {target.status}, not active")
        if self.engine is None:
            refusal = Refusal(NOT_CONFIGURED_REASON, "not_configured")
            await self._record(target, action, trigger, [refusal])
            raise EscalationRefused(refusal)
        engine = self.engine
        candidates, refusals = self._build(target, action, engine.config)
        declared = await prefixes.workspace_prefixes(self.db, target.workspace_id)
        owner = Owner(
            workspace_id=target.workspace_id,
            node_id=target.node_id,
            incident_id=target.incident_id,
            trigger=trigger,
        )
        accepted: list[Accepted] = []
        for announcement in candidates:
            result = await engine.announce(announcement, declared, owner=owner)
            if isinstance(result, Refusal):
                refusals.append(result)
            else:
                accepted.append(result)
        recorded = await self._record(target, action, trigger, refusals)
        if not accepted:
            # the most fundamental reason answers: who may be announced, then the cap...
            raise EscalationRefused(min(refusals, key=lambda r: _ANSWER_ORDER.index(r.kind)))
        new = [a.live.id for a in accepted if a.replaced is None]
        if new:
            await self._publish("upstream_announced", target, new[0])
        views = [
            await bgp_store.workspace_announcement(self.db, target.workspace_id, a.live.id)
            for a in accepted
        ]
        return Escalation(announced=[v for v in views if v is not None], refusals=recorded)

    @staticmethod
    def _build(
        target: IncidentTarget, action: AnnouncementKind, config: BgpConfig
    ) -> tuple[list[Announcement], list[Refusal]]:
        if action == "rtbh":
            return [rtbh_for(target.node_ip, config)], []
        if not target.rule_figures:
            reason = "the incident has no mitigation rules to build FlowSpec rules from"
            return [], [Refusal(reason + " (RTBH needs none)", "not_buildable")]
        built = flowspec_for_rules(target.rule_figures, target.node_ip)
        return list(built.rules), list(built.refusals)

    async def _record(
        self,
        target: IncidentTarget,
        action: AnnouncementKind,
        trigger: Trigger,
        refusals: list[Refusal],
    ) -> list[UpstreamRefusal]:
        now = clock.iso(clock.now()) or ""
        # every rule refused for the same reason (the address, the cap) is one refusal
        unique: dict[str, Refusal] = {}
        for refusal in refusals:
            unique.setdefault(refusal.reason, refusal)
        refusals = list(unique.values())
        for refusal in refusals:
            await bgp_store.record_refusal(
                self.db, target.workspace_id, target.incident_id, action, trigger, refusal.reason
            )
        return [
            UpstreamRefusal(action=action, trigger=trigger, reason=r.reason, refused_at=now)
            for r in refusals
        ]

    # ---- withdraw ----------------------------------------------------------------------

    async def withdraw(self, workspace_id: int, announcement_id: int) -> UpstreamAnnouncement:
        """An operator withdraws one of the workspace's announcements."""
        view = await bgp_store.workspace_announcement(self.db, workspace_id, announcement_id)
        if view is None:
            raise NotFound("announcement not found")
        engine = self._engine()
        if not view.in_force:
            raise Conflict(f"announcement {announcement_id} is already withdrawn")
        await self.withdraw_id(engine, announcement_id, "operator")
        after = await bgp_store.workspace_announcement(self.db, workspace_id, announcement_id)
        assert after is not None
        return after

    async def withdraw_id(
        self, engine: BgpEngine, announcement_id: int, reason: WithdrawReason
    ) -> None:
        if not await engine.withdraw(announcement_id, reason):
            # stored as live but not in the engine's table (cannot be in force): say so
            await engine.ledger.withdrawn(announcement_id, reason, clock.now())

    async def _announce_withdrawal(self, live: LiveAnnouncement, reason: WithdrawReason) -> None:
        owner = live.owner
        if owner is None or owner.incident_id is None or reason == "rejected":
            return
        # a node's incident or a fleet incident (no node): both are told
        rows = list(
            await self.db.execute_fetchall(
                "SELECT uuid, workspace_id FROM incidents WHERE id = ?", (owner.incident_id,)
            )
        )
        if rows:
            await self.publish(
                "upstream_withdrawn", rows[0]["workspace_id"], rows[0]["uuid"], live.id
            )

    async def _publish(
        self, kind: IncidentEventKind, target: IncidentTarget, announcement_id: int
    ) -> None:
        await self.publish(kind, target.workspace_id, target.incident_uuid, announcement_id)

    async def publish(
        self, kind: IncidentEventKind, workspace_id: int, incident_uuid: str, announcement_id: int
    ) -> None:
        """Tell the channels of an announcement made or withdrawn for an incident (also
        the fleet engine's, control.fleet.upstream)."""
        try:
            incident = await self.incidents.get(workspace_id, incident_uuid)
            await self.events.publish(
                IncidentEvent(
                    kind=kind,
                    workspace_id=workspace_id,
                    incident_uuid=incident_uuid,
                    incident=incident,
                    announcement_id=announcement_id,
                )
            )
        except Exception:
            # the announcement is made (or withdrawn); telling people must not undo that
            log.exception("publishing %s for %s failed", kind, incident_uuid)

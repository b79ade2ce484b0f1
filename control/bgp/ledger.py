"""Where the engine keeps its announcements: the interface, and the in-memory one.

The engine holds what is in force in memory and tells its ledger every change as it
makes it (added, renewed, withdrawn), so that a ledger backed by storage
(control.bgp.store.SqliteLedger) can hand the live ones back after a restart.
"""

from __future__ import annotations

import itertools
from typing import Literal, Protocol

import msgspec

from control.bgp.announcements import Announcement

Trigger = Literal["manual", "uplink_share", "link_saturated", "fleet_uplink_share"]
WithdrawReason = Literal["operator", "expired", "resolved", "evicted", "rejected"]


class Owner(msgspec.Struct, frozen=True, kw_only=True):
    """Whose announcement it is: a workspace's node, for one of its incidents; or, for a
    fleet incident (trigger fleet_uplink_share), the workspace alone (node_id None)."""

    workspace_id: int
    node_id: int | None
    incident_id: int | None
    trigger: Trigger


class LiveAnnouncement(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    announcement: Announcement
    announced_at: float  # wall-clock seconds; a renewal moves it
    expires_at: float
    owner: Owner | None = None


class AnnouncementLedger(Protocol):
    async def load(self) -> list[LiveAnnouncement]:
        """Every announcement not withdrawn (expired ones included: the engine decides)."""

    async def added(
        self,
        announcement: Announcement,
        owner: Owner | None,
        announced_at: float,
        expires_at: float,
    ) -> int:
        """Record a new announcement; returns its id."""

    async def renewed(self, live: LiveAnnouncement) -> None:
        """The same route announced again: new times (and owner)."""

    async def withdrawn(self, announcement_id: int, reason: WithdrawReason, at: float) -> None:
        """No longer in force."""


class MemoryLedger:
    """Nothing kept across restarts (tests of the engine alone)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def load(self) -> list[LiveAnnouncement]:
        return []

    async def added(
        self,
        announcement: Announcement,
        owner: Owner | None,
        announced_at: float,
        expires_at: float,
    ) -> int:
        return next(self._ids)

    async def renewed(self, live: LiveAnnouncement) -> None:
        return None

    async def withdrawn(self, announcement_id: int, reason: WithdrawReason, at: float) -> None:
        return None

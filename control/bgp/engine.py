"""What is in force upstream: the announcements ftcontrol owns, and their lifecycle.

announce() checks the destination against the workspace's declared prefixes, enforces the
cap and sends the announcement to ExaBGP; every announcement expires after its TTL and is
then withdrawn. The cap: when `max_announcements` are in force and a new one comes, the
OLDEST in force is withdrawn first (the newest attack is the one still hurting). A second
announcement with the same BGP identity (same FlowSpec match, or same RTBH prefix) replaces
the first in place and gets a fresh TTL. After ExaBGP (re)starts, everything still in
force is announced again; an expired announcement never is. If the BGP session drops, the
peer withdraws all our routes by protocol: the fail-safe is "nothing filtered".

The cap, with owners (the product: every announcement belongs to a workspace): the oldest
announcement OF THE SAME WORKSPACE is withdrawn first; a workspace with none in force is
refused (one tenant never pushes out another's filters). Without an owner (tests, the
bench) the oldest overall goes.

Storage: every change goes to the ledger as it happens (control.bgp.ledger); start()
loads the live ones back, withdraws (in the ledger) those that expired meanwhile and
those above the cap, oldest first, and the rest are announced once ExaBGP is up.

Owned by the app's lifespan: start() / stop().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import msgspec

from control.bgp.announcements import Announcement
from control.bgp.builder import Refusal, authorize_destination
from control.bgp.config import BgpConfig
from control.bgp.ledger import (
    AnnouncementLedger,
    LiveAnnouncement,
    MemoryLedger,
    Owner,
    WithdrawReason,
)
from control.bgp.speaker import CommandRejected, ExaBgpSpeaker, PeerState, SpeakerUnavailable

log = logging.getLogger(__name__)

__all__ = ["Accepted", "BgpEngine", "LiveAnnouncement", "Owner"]

WithdrawnHook = Callable[[LiveAnnouncement, WithdrawReason], Awaitable[None]]


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    live: LiveAnnouncement
    sent: bool  # False: ExaBGP is down; it goes out when ExaBGP is back
    replaced: int | None = None  # id of the announcement this one replaced
    evicted: tuple[int, ...] = ()  # ids withdrawn to stay within max_announcements


def _same_workspace(a: Owner | None, b: Owner | None) -> bool:
    if a is None or b is None:
        return True  # ownerless announcements (engine tests, the bench) belong to nobody
    return a.workspace_id == b.workspace_id


class BgpEngine:
    def __init__(
        self,
        config: BgpConfig,
        workdir: Path,
        *,
        argv_prefix: Sequence[str] = (),
        exabgp: str = "exabgp",
        clock: Callable[[], float] = time.time,
        backoff_initial_s: float = 0.5,
        ledger: AnnouncementLedger | None = None,
        on_withdrawn: WithdrawnHook | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.ledger: AnnouncementLedger = ledger or MemoryLedger()
        # told of every withdrawal (after the engine's lock is released)
        self.on_withdrawn = on_withdrawn
        self.speaker = ExaBgpSpeaker(
            config,
            workdir,
            argv_prefix=argv_prefix,
            exabgp=exabgp,
            on_ready=self._reannounce,
            backoff_initial_s=backoff_initial_s,
        )
        self._live: dict[int, LiveAnnouncement] = {}
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._expiry: asyncio.Task[None] | None = None
        self._withdrawn: list[tuple[LiveAnnouncement, WithdrawReason]] = []

    async def start(self) -> None:
        await self._load()
        await self.speaker.start()
        self._expiry = asyncio.create_task(self._expire_forever(), name="bgp-expiry")

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        await self.speaker.stop()

    async def _load(self) -> None:
        """What the ledger holds in force: expired ones withdrawn, the cap applied (the
        oldest go), the rest kept to be announced when ExaBGP is up."""
        now = self.clock()
        kept = []
        for live in sorted(await self.ledger.load(), key=lambda a: (a.announced_at, a.id)):
            if live.expires_at <= now:
                await self.ledger.withdrawn(live.id, "expired", now)
                self._withdrawn.append((live, "expired"))
            else:
                kept.append(live)
        excess = max(0, len(kept) - self.config.max_announcements)
        for live in kept[:excess]:
            await self.ledger.withdrawn(live.id, "evicted", now)
            self._withdrawn.append((live, "evicted"))
        self._live = {live.id: live for live in kept[excess:]}
        await self._report_withdrawn()

    def get(self, announcement_id: int) -> LiveAnnouncement | None:
        return self._live.get(announcement_id)

    def live(self) -> list[LiveAnnouncement]:
        """In force now, oldest first."""
        return sorted(self._live.values(), key=lambda a: (a.announced_at, a.id))

    def peers(self) -> list[PeerState]:
        return self.speaker.peers()

    async def announce(
        self,
        announcement: Announcement,
        declared_prefixes: Sequence[str],
        ttl_s: float | None = None,
        owner: Owner | None = None,
    ) -> Accepted | Refusal:
        refusal = authorize_destination(announcement.destination, declared_prefixes)
        if refusal is not None:
            return refusal
        ttl = self.config.default_ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            return Refusal(f"ttl_s must be above 0, not {ttl}", "not_buildable")
        try:
            async with self._lock:
                return await self._announce_locked(announcement, ttl, owner)
        finally:
            await self._report_withdrawn()

    async def _announce_locked(
        self, announcement: Announcement, ttl: float, owner: Owner | None
    ) -> Accepted | Refusal:
        now = self.clock()
        key = announcement.key()
        same = next((a for a in self._live.values() if a.announcement.key() == key), None)
        evicted: list[int] = []
        if same is not None and not _same_workspace(same.owner, owner):
            # one route, two tenants (overlapping declared prefixes): the first keeps it
            return Refusal(f"{announcement.destination} is announced for another workspace")
        if same is None:
            while len(self._live) >= self.config.max_announcements:
                oldest = self._eviction_candidate(owner)
                if oldest is None:
                    return Refusal(
                        f"max_announcements ({self.config.max_announcements}) are in force "
                        "and none of them is this workspace's to replace",
                        "cap",
                    )
                await self._withdraw_locked(oldest, "evicted")
                evicted.append(oldest.id)
            live_id = await self.ledger.added(announcement, owner, now, now + ttl)
            live = LiveAnnouncement(
                id=live_id,
                announcement=announcement,
                announced_at=now,
                expires_at=now + ttl,
                owner=owner,
            )
        else:
            live = LiveAnnouncement(
                id=same.id,
                announcement=announcement,
                announced_at=now,
                expires_at=now + ttl,
                owner=owner or same.owner,
            )
            await self.ledger.renewed(live)
        self._live[live.id] = live
        sent = await self._send(announcement.announce_command())
        if isinstance(sent, Refusal):
            del self._live[live.id]
            await self.ledger.withdrawn(live.id, "rejected", now)
            return sent
        self._changed.set()
        return Accepted(
            live=live,
            sent=sent,
            replaced=same.id if same is not None else None,
            evicted=tuple(evicted),
        )

    def _eviction_candidate(self, owner: Owner | None) -> LiveAnnouncement | None:
        """The oldest in force that a new announcement of `owner` may push out."""
        for live in self.live():
            if owner is None or (
                live.owner is not None and live.owner.workspace_id == owner.workspace_id
            ):
                return live
        return None

    async def withdraw(self, announcement_id: int, reason: WithdrawReason = "operator") -> bool:
        """Withdraw one announcement; False when it is not in force."""
        try:
            async with self._lock:
                live = self._live.get(announcement_id)
                if live is None:
                    return False
                await self._withdraw_locked(live, reason)
                self._changed.set()
                return True
        finally:
            await self._report_withdrawn()

    async def _withdraw_locked(self, live: LiveAnnouncement, reason: WithdrawReason) -> None:
        del self._live[live.id]
        await self.ledger.withdrawn(live.id, reason, self.clock())
        self._withdrawn.append((live, reason))
        # ExaBGP down: nothing to withdraw (its sessions are down, so peers dropped the
        # route), and the re-announcement after its restart no longer contains this one.
        await self._send(live.announcement.withdraw_command())

    async def _report_withdrawn(self) -> None:
        """Tell the owner's hook of withdrawals, outside the lock (it may take its time)."""
        done, self._withdrawn = self._withdrawn, []
        if self.on_withdrawn is None:
            return
        for live, reason in done:
            try:
                await self.on_withdrawn(live, reason)
            except Exception:
                log.exception("the withdrawal hook failed for announcement %s", live.id)

    async def _send(self, command: str) -> bool | Refusal:
        try:
            await self.speaker.send(command)
        except SpeakerUnavailable:
            return False
        except CommandRejected:
            return Refusal(f"ExaBGP rejected the command: {command}")
        return True

    async def _reannounce(self) -> None:
        async with self._lock:
            now = self.clock()
            for live in self.live():
                if live.expires_at > now:
                    await self.speaker.send(live.announcement.announce_command())

    async def _expire_forever(self) -> None:
        while True:
            async with self._lock:
                now = self.clock()
                for live in self.live():
                    if live.expires_at <= now:
                        log.info("announcement %s expired; withdrawing", live.id)
                        await self._withdraw_locked(live, "expired")
                wait = min((a.expires_at for a in self._live.values()), default=now + 60) - now
                self._changed.clear()
            await self._report_withdrawn()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (stop())
            # that comes as the event is set
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.05)):
                    await self._changed.wait()

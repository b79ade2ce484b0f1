"""What is in force upstream: the announcements ftcontrol owns, and their lifecycle.

announce() checks the destination against the workspace's declared prefixes, enforces the
cap and sends the announcement to ExaBGP; every announcement expires after its TTL and is
then withdrawn. The cap: when `max_announcements` are in force and a new one comes, the
OLDEST in force is withdrawn first (the newest attack is the one still hurting). A second
announcement with the same BGP identity (same FlowSpec match, or same RTBH prefix) replaces
the first in place and gets a fresh TTL. After ExaBGP (re)starts, everything still in
force is announced again; an expired announcement never is. If the BGP session drops, the
peer withdraws all our routes by protocol: the fail-safe is "nothing filtered".

Owned by the app's lifespan: start() / stop(). Storage comes later; the table is in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from control.bgp.announcements import Announcement
from control.bgp.builder import Refusal, authorize
from control.bgp.config import BgpConfig
from control.bgp.speaker import CommandRejected, ExaBgpSpeaker, PeerState, SpeakerUnavailable

log = logging.getLogger(__name__)


class LiveAnnouncement(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    announcement: Announcement
    announced_at: float  # wall-clock seconds
    expires_at: float


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    live: LiveAnnouncement
    sent: bool  # False: ExaBGP is down; it goes out when ExaBGP is back
    replaced: int | None = None  # id of the announcement this one replaced
    evicted: tuple[int, ...] = ()  # ids withdrawn to stay within max_announcements


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
    ) -> None:
        self.config = config
        self.clock = clock
        self.speaker = ExaBgpSpeaker(
            config,
            workdir,
            argv_prefix=argv_prefix,
            exabgp=exabgp,
            on_ready=self._reannounce,
            backoff_initial_s=backoff_initial_s,
        )
        self._live: dict[int, LiveAnnouncement] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._expiry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.speaker.start()
        self._expiry = asyncio.create_task(self._expire_forever(), name="bgp-expiry")

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        await self.speaker.stop()

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
    ) -> Accepted | Refusal:
        address = str(ipaddress.ip_network(announcement.destination).network_address)
        refusal = authorize(address, declared_prefixes)
        if refusal is not None:
            return refusal
        ttl = self.config.default_ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            return Refusal(f"ttl_s must be above 0, not {ttl}")
        async with self._lock:
            now = self.clock()
            key = announcement.key()
            same = next((a for a in self._live.values() if a.announcement.key() == key), None)
            evicted: list[int] = []
            if same is None:
                while len(self._live) >= self.config.max_announcements:
                    oldest = self.live()[0]
                    await self._withdraw_locked(oldest)
                    evicted.append(oldest.id)
            live = LiveAnnouncement(
                id=same.id if same is not None else next(self._ids),
                announcement=announcement,
                announced_at=now,
                expires_at=now + ttl,
            )
            self._live[live.id] = live
            sent = await self._send(announcement.announce_command())
            if isinstance(sent, Refusal):
                del self._live[live.id]
                return sent
            self._changed.set()
            return Accepted(
                live=live,
                sent=sent,
                replaced=same.id if same is not None else None,
                evicted=tuple(evicted),
            )

    async def withdraw(self, announcement_id: int) -> bool:
        """Withdraw one announcement; False when it is not in force."""
        async with self._lock:
            live = self._live.get(announcement_id)
            if live is None:
                return False
            await self._withdraw_locked(live)
            self._changed.set()
            return True

    async def _withdraw_locked(self, live: LiveAnnouncement) -> None:
        del self._live[live.id]
        # ExaBGP down: nothing to withdraw (its sessions are down, so peers dropped the
        # route), and the re-announcement after its restart no longer contains this one.
        await self._send(live.announcement.withdraw_command())

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
                        await self._withdraw_locked(live)
                wait = min((a.expires_at for a in self._live.values()), default=now + 60) - now
                self._changed.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (stop())
            # that comes as the event is set
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.05)):
                    await self._changed.wait()

"""The notification dispatcher: incident events in, one persisted delivery per channel out.

Flow: the incident service publishes an `IncidentEvent`; `_on_event` writes one
`notification_deliveries` row per matching channel (UNIQUE per channel and event, so an
event is never queued twice) and wakes that channel's worker. Each channel has its own
asyncio task that sends its deliveries one at a time in order, so a slow, rate-limited or
dead channel only ever delays itself. Every attempt is recorded; failures are retried with
exponential back-off and jitter, or after the service's Retry-After. Rows are persisted
before anything is sent, so whatever is pending when the process stops is resumed by the
next `start()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import aiosqlite
import httpx
import msgspec

from control.incidents.event_bus import IncidentEvent, IncidentEvents
from control.incidents.schemas import Incident
from control.notify import store
from control.notify.config import (
    ChannelConfig,
    ChannelConfigError,
    EmailConfig,
    parse_config,
)
from control.notify.formats import build_http_request
from control.notify.formats import email as email_format
from control.notify.http_sender import send_http
from control.notify.message import Notice, build_test_notice, notice_kind
from control.notify.outcome import Outcome
from control.notify.retry import RetryPolicy
from control.notify.smtp_sender import send_email
from ftcontract.vocabulary import severity_rank

log = logging.getLogger("control.notify")

# Incident event kinds that notify people; "updated" (new peak, new sources) does not.
NOTIFY_KINDS: frozenset[str] = frozenset(
    {
        "opened",
        "escalated",
        "resolved",
        "false_positive",
        "upstream_announced",
        "upstream_withdrawn",
    }
)


class NotifySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    # httpx connect/read/write/pool timeout for one request.
    http_timeout_sec: float = 10.0
    smtp_timeout_sec: float = 20.0
    # Upper bound on one attempt end to end (a server that trickles bytes forever).
    attempt_timeout_sec: float = 30.0
    # How often pending deliveries are looked for even without a wake-up (safety net).
    rescan_interval_sec: float = 30.0
    # On stop, attempts already in flight get this long to finish and be recorded (so a
    # clean restart does not send them again); after it they are cancelled and stay pending.
    stop_grace_sec: float = 5.0
    smtp_threads: int = 4


def event_key(event: IncidentEvent) -> str | None:
    """The identity of a notifiable event; None for kinds that notify nobody."""
    if event.kind not in NOTIFY_KINDS:
        return None
    if event.kind == "escalated":
        # Severity only rises, so each escalation step is a distinct event.
        return f"{event.incident_uuid}:escalated:{event.incident.severity}"
    if event.kind in ("upstream_announced", "upstream_withdrawn"):
        # one notice per announcement made, and per announcement taken back
        return f"{event.incident_uuid}:{event.kind}:{event.announcement_id}"
    return f"{event.incident_uuid}:{event.kind}"


def channel_wants(cfg: ChannelConfig, incident: Incident) -> bool:
    """The channel's filters: minimum severity and, when listed, the nodes it covers."""
    if severity_rank(incident.severity) < severity_rank(cfg.min_severity):
        return False
    if not cfg.nodes:
        return True
    # A fleet incident concerns every node of its group: wanted when one of them is listed.
    nodes = (
        [(incident.node.uuid, incident.node.name)]
        if incident.node is not None
        else [(n.node_uuid, n.node_name) for n in incident.nodes]
    )
    return any(uuid in cfg.nodes or name in cfg.nodes for uuid, name in nodes)


class NotificationService:
    def __init__(
        self,
        db: aiosqlite.Connection,
        events: IncidentEvents,
        settings: NotifySettings | None = None,
        *,
        smtp_tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._db = db
        self._events = events
        self.settings = settings or NotifySettings()
        self._smtp_tls = smtp_tls_context
        self._client: httpx.AsyncClient | None = None
        self._smtp_pool: ThreadPoolExecutor | None = None
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self._rescan: asyncio.Task[None] | None = None
        self._subscribed = False
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to incident events, start the workers, resume pending deliveries."""
        if self._running:
            return
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.http_timeout_sec), follow_redirects=False
        )
        self._smtp_pool = ThreadPoolExecutor(
            max_workers=self.settings.smtp_threads, thread_name_prefix="notify-smtp"
        )
        if not self._subscribed:
            self._events.subscribe(self._on_event)
            self._subscribed = True
        self._running = True
        await self._wake_pending()
        self._rescan = asyncio.create_task(self._rescan_loop(), name="notify-rescan")

    async def stop(self) -> None:
        """Stop sending. Unfinished deliveries stay pending in the database."""
        if not self._running:
            return
        self._running = False
        if self._rescan is not None:
            self._rescan.cancel()
        workers = list(self._workers.values())
        for wakeup in self._wakeups.values():
            wakeup.set()  # workers waiting out a back-off see _running is False and leave
        if workers:
            _, late = await asyncio.wait(workers, timeout=self.settings.stop_grace_sec)
            for task in late:
                task.cancel()
        tasks = [t for t in (self._rescan, *workers) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._rescan = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._smtp_pool is not None:
            self._smtp_pool.shutdown(wait=False, cancel_futures=True)
            self._smtp_pool = None

    @property
    def running(self) -> bool:
        return self._running

    # -- events in -----------------------------------------------------------------------

    async def _on_event(self, event: IncidentEvent) -> None:
        """Persist one delivery per matching channel and return (never raises)."""
        try:
            await self.enqueue_event(event)
        except Exception:
            # The incident write already committed; a notification problem must not
            # surface as an incident API error.
            log.exception("could not queue notifications for %s", event.incident_uuid)

    async def enqueue_event(self, event: IncidentEvent) -> list[int]:
        """Queue `event` for every enabled channel of its workspace that wants it."""
        key = event_key(event)
        if key is None:
            return []
        kind = notice_kind(event.kind)  # "updated" was filtered out by event_key
        items: list[store.NewDelivery] = []
        for channel in await store.enabled_channels(self._db, event.workspace_id):
            try:
                cfg = parse_config(channel.type, channel.config)
            except ChannelConfigError as exc:
                log.warning("channel %d has an unusable config: %s", channel.id, exc)
                continue
            if channel_wants(cfg, event.incident):
                items.append(
                    store.NewDelivery(
                        channel_id=channel.id,
                        event_key=key,
                        event_kind=kind,
                        incident_uuid=event.incident_uuid,
                        incident=event.incident,
                    )
                )
        queued = await store.enqueue(self._db, event.workspace_id, items, time.time())
        for channel_id in queued:
            self._wake(channel_id)
        return queued

    # -- workers -------------------------------------------------------------------------

    def _wake(self, channel_id: int) -> None:
        if not self._running:
            return  # persisted; the next start() resumes it
        self._wakeups.setdefault(channel_id, asyncio.Event()).set()
        task = self._workers.get(channel_id)
        if task is None or task.done():
            self._workers[channel_id] = asyncio.create_task(
                self._channel_worker(channel_id), name=f"notify-channel-{channel_id}"
            )

    async def _wake_pending(self) -> None:
        for channel_id in await store.channels_with_pending(self._db):
            self._wake(channel_id)

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rescan_interval_sec)
            try:
                await self._wake_pending()
            except Exception:
                log.exception("scanning for pending notifications failed")

    async def _channel_worker(self, channel_id: int) -> None:
        wakeup = self._wakeups.setdefault(channel_id, asyncio.Event())
        while self._running:
            wakeup.clear()
            try:
                delivery = await store.next_pending(self._db, channel_id)
                if delivery is None:
                    if wakeup.is_set():
                        continue  # queued while we were looking
                    break
                wait = delivery.next_attempt_at - time.time()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), timeout=wait)
                    continue
                await self._attempt(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup: leave the row pending and let the rescan retry it.
                log.exception("notification worker for channel %d failed", channel_id)
                break
        # No await between the last check and here: a wake-up cannot slip in between.
        if self._workers.get(channel_id) is asyncio.current_task():
            del self._workers[channel_id]

    async def _attempt(self, delivery: store.DeliveryRow) -> None:
        channel = await store.get_channel(self._db, delivery.channel_id)
        now = time.time()
        if channel is None:
            return  # deleted: its deliveries went with it (ON DELETE CASCADE)
        if not channel.enabled:
            await store.fail_pending(self._db, delivery, "channel disabled", now)
            return
        try:
            cfg = parse_config(channel.type, channel.config)
        except ChannelConfigError as exc:
            await store.fail_pending(self._db, delivery, f"unusable config: {exc}", now)
            return
        notice = Notice.from_incident(notice_kind(delivery.event_kind), delivery.incident)
        attempted_at = time.time()
        started = time.monotonic()
        outcome = await self.send(cfg, notice, delivery.event_key)
        duration_ms = (time.monotonic() - started) * 1000
        attempt = delivery.attempts + 1
        retry_in: float | None = None
        policy = self.settings.retry
        if not outcome.delivered and outcome.retryable and attempt < policy.max_attempts:
            retry_in = policy.delay(attempt, outcome.retry_after)
        result = await store.record_attempt(
            self._db,
            delivery,
            outcome,
            attempted_at=attempted_at,
            duration_ms=duration_ms,
            retry_in=retry_in,
            now=time.time(),
        )
        if result != "delivered":
            log.warning(
                "channel %d delivery %d attempt %d: %s (%s)",
                delivery.channel_id,
                delivery.id,
                attempt,
                outcome.error,
                f"retry in {retry_in:.1f}s" if retry_in is not None else "giving up",
            )

    # -- sending -------------------------------------------------------------------------

    async def send(self, cfg: ChannelConfig, notice: Notice, delivery_key: str) -> Outcome:
        """One attempt to deliver `notice` through the channel described by `cfg`."""
        if self._client is None or self._smtp_pool is None:
            return Outcome(delivered=False, retryable=True, error="notification service stopped")
        try:
            async with asyncio.timeout(self.settings.attempt_timeout_sec):
                if isinstance(cfg, EmailConfig):
                    message = email_format.build(cfg, notice, delivery_key)
                    return await send_email(
                        cfg,
                        message,
                        timeout_sec=self.settings.smtp_timeout_sec,
                        tls=self._smtp_tls,
                        executor=self._smtp_pool,
                    )
                request = build_http_request(cfg, notice, delivery_key)
                return await send_http(self._client, request)
        except TimeoutError:
            return Outcome(delivered=False, retryable=True, error="attempt timed out")
        except Exception as exc:
            log.exception("building or sending a notification failed")
            return Outcome(delivered=False, retryable=False, error=f"internal error: {exc!r}")

    async def send_test(self, channel: store.ChannelRow) -> store.TestResult:
        """Send one test message now (no retries) and record it as a delivery + attempt."""
        cfg = parse_config(channel.type, channel.config)
        notice = build_test_notice()
        key = f"test:{notice.incident_uuid}"
        attempted_at = time.time()
        started = time.monotonic()
        outcome = await self.send(cfg, notice, key)
        duration_ms = (time.monotonic() - started) * 1000
        return await store.record_test(
            self._db,
            channel,
            event_key=key,
            incident=notice.details(),
            outcome=outcome,
            attempted_at=attempted_at,
            duration_ms=duration_ms,
            now=time.time(),
        )

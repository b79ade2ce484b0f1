"""The background reporter: everything the agent tells the control plane goes through here.

The agent loop calls the `report_*` methods, which only put a message on an in-memory
queue and return (no disk, no network: detection and mitigation never wait). One sender
thread moves queued messages into the disk spool, then sends the spool's oldest entries
in order: consecutive metric points as one batch (one point a post normally, more after
an outage), incident events and pcap uploads one at a time, as soon as they are
queued. A failure leaves the entry in the spool and counts against the circuit breaker;
the next attempt resends it, so order is kept across outages and restarts. The control
plane makes every message idempotent (metric points by node and second, incidents by the
agent's uuid and `seq`), so a resend after a lost reply duplicates nothing.

Live-only (never spooled): the heartbeat, which carries the spool size, and the config
fetch, whose operator commands are handed to the agent loop through `take_control()`;
the loop's answers (`ack_commands`) are spooled like events.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ftagent.report.breaker import CircuitBreaker
from ftagent.report.client import AgentClient, RejectedError, TransientError
from ftagent.report.spool import Pending, Spool, SpoolEntry
from ftcontract import agent_api
from ftcontract.vocabulary import ResolveReason

log = logging.getLogger("ftagent.report")

_KIND_METRICS = "metrics"
_KIND_PCAP = "pcap"
_RETRY_PAUSE_S = 0.1


@dataclass(frozen=True, slots=True)
class ReporterSettings:
    # Fed from [control] (ftagent.config.ControlConfig holds their defaults, once).
    server: str
    api_key: str
    node_uuid: str
    spool_path: Path
    heartbeat_interval_s: float
    metrics_interval_s: float
    config_interval_s: float
    config_interval_attack_s: float
    timeout_s: float
    spool_max_bytes: int
    verify_tls: bool
    # The reporter's own tunables.
    connect_timeout_s: float = 2.0
    metrics_batch_max: int = 600
    breaker_failures: int = 3
    breaker_reset_s: float = 1.0
    breaker_max_reset_s: float = 15.0


class _PcapRef(msgspec.Struct):
    file: str


@dataclass(slots=True)
class ReporterStats:
    sent_entries: int = 0
    sent_batches: int = 0
    rejected: int = 0
    failures: int = 0
    heartbeats: int = 0
    config_fetches: int = 0
    last_error: str = ""


StatusFn = Callable[[], agent_api.Heartbeat]


class Reporter:
    def __init__(self, settings: ReporterSettings, status: StatusFn) -> None:
        self.settings = settings
        self._status = status
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._spool = Spool(settings.spool_path, settings.spool_max_bytes)
        self._breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_reset_s, settings.breaker_max_reset_s
        )
        self._client = AgentClient(
            settings.server,
            settings.api_key,
            settings.node_uuid,
            connect_timeout_s=settings.connect_timeout_s,
            timeout_s=settings.timeout_s,
            verify_tls=settings.verify_tls,
        )
        self._control_lock = threading.Lock()
        self._control: agent_api.AgentConfig | None = None
        self._delivered_commands: set[int] = set()
        self._config_version = -1
        self._config_due = threading.Event()  # fetch /config at the next turn
        self._fresh = False  # entries were queued since the last drain
        # Called with MetricsReply.fleet_version (the fleet watcher compares it).
        self.on_fleet_version: Callable[[int], None] | None = None
        self._attack = False
        self.stats = ReporterStats()
        self._spool_size = len(self._spool)

    # ---- called from the agent loop: never blocks --------------------------------------

    def report_metrics(self, point: agent_api.MetricPoint) -> None:
        """Posted as soon as the sender sees it (the control plane sums each real second
        of every node of a group; a point held back delays fleet detection)."""
        body = msgspec.json.encode(point)
        self._put(Pending(_KIND_METRICS, "metrics", body, droppable=True), wake=True)

    def report_incident_opened(
        self, uuid: str, started_at: float, f: agent_api.IncidentFigures
    ) -> None:
        self._attack = True
        body = agent_api.IncidentOpen(uuid=uuid, started_at=started_at, figures=f)
        self._put(Pending("incident_open", "incidents", msgspec.json.encode(body), False), True)

    def report_incident_updated(self, uuid: str, f: agent_api.IncidentFigures) -> None:
        body = msgspec.json.encode(agent_api.IncidentUpdate(figures=f))
        self._put(Pending("incident_update", f"incidents/{uuid}", body, False), wake=True)

    def report_incident_resolved(
        self,
        uuid: str,
        ended_at: float,
        f: agent_api.IncidentFigures,
        reason: ResolveReason = "cooled_down",
    ) -> None:
        self._attack = False
        resolve = agent_api.IncidentResolve(ended_at=ended_at, reason=reason, figures=f)
        body = msgspec.json.encode(resolve)
        self._put(Pending("incident_resolve", f"incidents/{uuid}/resolve", body, False), True)

    def report_pcap(self, uuid: str, file: Path) -> None:
        body = msgspec.json.encode(_PcapRef(file=str(file)))
        self._put(Pending(_KIND_PCAP, f"incidents/{uuid}/pcap", body, False), wake=True)

    def take_control(self) -> agent_api.AgentConfig | None:
        """The newest config from the control plane not yet taken, with only the commands
        the loop has not been given before; None when nothing new arrived."""
        with self._control_lock:
            cfg, self._control = self._control, None
        return cfg

    def ack_commands(self, acks: list[agent_api.CommandAck]) -> None:
        if acks:
            body = msgspec.json.encode(agent_api.CommandAcks(acks=acks))
            self._put(Pending("ack", "commands/ack", body, False), wake=True)

    def set_attack(self, active: bool) -> None:
        """Fetch the config more often while an attack is on (operators act then)."""
        self._attack = active

    @property
    def spool_size(self) -> int:
        return self._spool_size

    @property
    def breaker_state(self) -> str:
        return self._breaker.state

    def fetch_config_now(self) -> None:
        """The fleet watcher saw the config version move or commands waiting: fetch
        /config now (operator block commands reach the loop within a second)."""
        self._config_due.set()
        self._wake.set()

    def _put(self, item: Pending, wake: bool = False) -> None:
        self._queue.put(item)
        if wake:
            self._wake.set()

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ftagent-reporter", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout_s: float = 2.0) -> None:
        """Stop the sender; whatever is not sent by `flush_timeout_s` stays in the spool."""
        self._flush_deadline = time.monotonic() + flush_timeout_s
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(flush_timeout_s + self.settings.timeout_s + 1.0)
            if self._thread.is_alive():
                # Stuck in a request: it is a daemon thread, the spool stays as it is.
                log.warning("reporter did not stop in time; unsent reports stay spooled")
                return
            self._thread = None
        self._absorb_queue()  # reports queued at the very end reach the disk too
        self._client.close()
        self._spool.close()

    # ---- sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        next_beat = next_config = next_metrics = 0.0  # all due at once on start
        while not self._stop.is_set():
            self._wake.clear()  # before absorbing: a put from now on wakes the wait below
            self._absorb_queue()
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.settings.heartbeat_interval_s
                if self._heartbeat() and self._config_changed:
                    next_config = now
            if now >= next_config:
                next_config = now + (
                    self.settings.config_interval_attack_s
                    if self._attack
                    else self.settings.config_interval_s
                )
                self._fetch_config()
            if self._config_due.is_set():
                self._config_due.clear()
                self._fetch_config()
            sent_all = True
            # Events and points go out as soon as they are queued; after a failed post,
            # spooled points are retried every metrics_interval_s (events sooner).
            if now >= next_metrics or self._spool.has_undroppable() or self._fresh:
                self._fresh = False
                sent_all = self._drain_spool(deadline=None)
                next_metrics = now + self.settings.metrics_interval_s
            self._spool_size = len(self._spool)
            wait = min(next_beat, next_config, next_metrics) - time.monotonic()
            if not sent_all and self._spool.has_undroppable():
                # Retry events as soon as the breaker lets us, but never spin.
                wait = min(wait, max(self._breaker.seconds_until_retry(), _RETRY_PAUSE_S))
            self._wake.wait(max(0.0, min(wait, 1.0)))
        self._absorb_queue()
        self._drain_spool(deadline=self._flush_deadline)
        self._spool_size = len(self._spool)

    _config_changed = False
    _flush_deadline = 0.0
    _recovered = True  # False from the first failure of an outage until a success

    def _absorb_queue(self) -> None:
        items: list[Pending] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if items:
            self._fresh = True
            dropped = self._spool.append(items)
            if dropped:
                log.warning("spool full: dropped %d oldest metric points", dropped)

    def _call(self, what: str, fn: Callable[[], None]) -> bool:
        """Run one request under the breaker; True on success."""
        if not self._breaker.allow():
            return False
        try:
            fn()
        except TransientError as exc:
            self._breaker.record_failure()
            self.stats.failures += 1
            self.stats.last_error = f"{what}: {exc}"
            if self._recovered:
                # Once per outage, not once per retry: the spool keeps everything meanwhile.
                log.warning("control plane unreachable (%s): %s; spooling reports", what, exc)
                self._recovered = False
            return False
        if not self._recovered:
            log.info("control plane reachable again; %d reports to replay", len(self._spool))
        self._recovered = True
        self._breaker.record_success()
        return True

    def _heartbeat(self) -> bool:
        def send() -> None:
            beat = msgspec.structs.replace(self._status(), spool_size=len(self._spool))
            try:
                reply = self._client.heartbeat(beat)
            except RejectedError as exc:
                self.stats.last_error = f"heartbeat: {exc}"
                log.error("control plane refused the heartbeat: %s", exc)
                return
            self.stats.heartbeats += 1
            self._config_changed = (
                reply.config_version != self._config_version or reply.pending_commands > 0
            )

        return self._call("heartbeat", send)

    def _fetch_config(self) -> None:
        def fetch() -> None:
            try:
                cfg = self._client.fetch_config()
            except RejectedError as exc:
                log.error("control plane refused the config fetch: %s", exc)
                return
            self.stats.config_fetches += 1
            self._config_changed = False
            fresh = [c for c in cfg.commands if c.id not in self._delivered_commands]
            if cfg.config_version == self._config_version and not fresh:
                return
            self._config_version = cfg.config_version
            self._delivered_commands.update(c.id for c in fresh)
            with self._control_lock:
                self._control = msgspec.structs.replace(cfg, commands=fresh)

        self._call("config", fetch)

    def _drain_spool(self, deadline: float | None) -> bool:
        """Send spooled entries oldest first; True when the spool is empty."""
        while deadline is None or time.monotonic() < deadline:
            if deadline is None and self._stop.is_set():
                return False
            batch = self._next_batch()
            if not batch:
                return True
            if not self._call(batch[0].kind, functools.partial(self._send, batch)):
                return False
            self._spool.remove(batch)
            self._absorb_queue()
        return False

    def _next_batch(self) -> list[SpoolEntry]:
        head = self._spool.peek(1)
        if not head or head[0].kind != _KIND_METRICS:
            return head  # an event goes alone
        batch: list[SpoolEntry] = []
        for e in self._spool.peek(self.settings.metrics_batch_max):
            if e.kind != _KIND_METRICS:
                break
            batch.append(e)
        return batch

    def _send(self, batch: list[SpoolEntry]) -> None:
        """Send one batch; a RejectedError is final (logged, counted, entries dropped)."""
        head = batch[0]
        if head.kind == _KIND_METRICS:
            self._send_points(batch)
            self.stats.sent_entries += len(batch)
            self.stats.sent_batches += 1
            return
        try:
            if head.kind == _KIND_PCAP:
                ref = msgspec.json.decode(head.body, type=_PcapRef)
                file = Path(ref.file)
                if not file.is_file():
                    raise RejectedError(0, f"pcap {file} no longer exists")
                self._client.upload_pcap(head.path.split("/")[1], file)
            else:
                self._client.post_json(head.path, head.body)
        except RejectedError as exc:
            self.stats.rejected += len(batch)
            self.stats.last_error = f"{head.kind}: {exc}"
            log.error("control plane refused %s (%s): dropped from the spool", head.kind, exc)
        self.stats.sent_entries += len(batch)
        self.stats.sent_batches += 1

    def _send_points(self, batch: list[SpoolEntry]) -> None:
        """Post metric points; when the batch is refused, halve it until only the refused
        points are left, so one bad point does not take its neighbours with it. A
        transient failure part-way leaves the whole batch spooled (resending the halves
        already accepted is idempotent)."""
        body = b'{"points":[' + b",".join(e.body for e in batch) + b"]}"
        try:
            resp = self._client.post_json("metrics", body)
        except RejectedError as exc:
            if len(batch) == 1:
                self.stats.rejected += 1
                self.stats.last_error = f"metrics: {exc}"
                log.error("control plane refused a metric point (%s): dropped", exc)
                return
            mid = len(batch) // 2
            self._send_points(batch[:mid])
            self._send_points(batch[mid:])
            return
        self._fleet_hint(resp.content)

    def _fleet_hint(self, content: bytes) -> None:
        """Hand the reply's fleet version to the watcher (a reply without one, from an
        older control plane, or unreadable, says nothing)."""
        if self.on_fleet_version is None:
            return
        try:
            reply = msgspec.json.decode(content, type=agent_api.MetricsReply)
        except msgspec.DecodeError:
            return
        if reply.fleet_version is not None:
            self.on_fleet_version(reply.fleet_version)

"""The agent loop: read counters -> window -> detector -> incident response -> fleet
orders -> mitigator -> sampling -> one-second point -> event sink, once per poll interval
(10 Hz by default).

Everything here runs in one thread; each window ends with one frozen `views.Snapshot`
that the local HTTP server (/health, /metrics) formats and nothing else: it reads no live
state. The jobs live in their own modules: `response` (one incident, open to resolve),
`sampling` (the kernel's sampling and the samples kept), `seconds` (one-second points,
baseline learning and saving), `overrides` (the control plane's settings), `protection`
(what no rule may target), `views` (the snapshot /health and /metrics show), `shield`
(a failing sink never stops the loop), `journal` (the active incident survives a crash),
`fleet` (the control plane's orders against an attack spread over the node's groups).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

import ftagent
from ftagent.config import Config, ConfigError, parse_networks
from ftagent.datapath import Counters, Datapath, IPNetwork, Rule
from ftagent.detect.baseline import Baseline
from ftagent.detect.detector import Detector, Transition, wake_pps
from ftagent.detect.rates import Window, compute_window, merge_windows
from ftagent.detect.reference import Reference
from ftagent.detect.seconds import Seconds
from ftagent.detect.wakeup import Waker
from ftagent.events import AgentStatus, EventSink, NullSink, ReportingState
from ftagent.evidence.sampling import Sampler
from ftagent.evidence.sources import SourceWatcher
from ftagent.link.link import LinkWatch
from ftagent.link.link_saturation import SaturationSettings
from ftagent.local.views import (
    Health,
    MetricsView,
    Quantiles,
    Snapshot,
    fleet_orders,
    incident_health,
    link_health,
    shown_thresholds,
    warnings,
)
from ftagent.mitigate.guard import SyncookieState, check_syncookies, guard_of
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.protection import Protection
from ftagent.orders import fleet_state
from ftagent.orders.fleet import FleetInbox, FleetRules
from ftagent.orders.operator_rules import apply_command
from ftagent.orders.overrides import OverrideApplier
from ftagent.respond.journal import IncidentJournal
from ftagent.respond.response import IncidentResponse, Tools
from ftagent.respond.shield import ShieldedSink
from ftcontract import agent_api

log = logging.getLogger("ftagent.agent")

SAMPLES_PER_POLL = 4096
# What started a window: the poll's tick, or the kernel's wake-up between two ticks.
Trigger = Literal["tick", "wake"]
WAKE_WINDOWS_PER_TICK = 3
MAX_WINDOW_FAILURES = 50


def load_baseline(cfg: Config, path: Path) -> Baseline:
    loaded, why_not = Baseline.load_with_reason(path, cfg.baseline)
    if loaded is not None:
        log.info("baseline restored: %d seconds", loaded.samples)
        return loaded
    if path.exists():
        # Say why: the operator sees the agent learning again after a restart.
        log.warning("saved baseline %s not used, learning a fresh one: %s", path, why_not)
    else:
        log.info("no saved baseline: learning a fresh one")
    return Baseline(cfg.baseline)


class Agent:
    def __init__(
        self,
        cfg: Config,
        datapath: Datapath,
        sink: EventSink | None = None,
        *,
        own_networks: list[IPNetwork] | None = None,
        control_networks: list[IPNetwork] | None = None,
        on_window: Callable[[Window, Agent], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        lock: threading.RLock | None = None,
        fleet_inbox: FleetInbox | None = None,
        reporting: Callable[[], ReportingState] | None = None,
    ) -> None:
        self.cfg = cfg
        self.dp = datapath
        self.sink = ShieldedSink(sink or NullSink())
        self.on_window = on_window
        self.wall = wall_clock
        # Datapath access (the source watcher's thread reads the same maps) and the views'
        # snapshot, built under it.
        self.lock = lock if lock is not None else threading.RLock()
        self.state_dir = state_dir = Path(cfg.agent.state_dir)
        self.pcap_dir = state_dir / "pcap"
        self.baseline = load_baseline(cfg, state_dir / "baseline.json")
        self.reference = Reference(cfg, self.baseline, wall_clock)
        d, m = cfg.detection, cfg.mitigation
        self.detector = Detector(d.confirm_windows, d.burst_factor, d.cooldown_s)
        self.protection = Protection(
            parse_networks(m.allowlist, "mitigation.allowlist"),
            list(control_networks or []),
            list(own_networks or []),
            parse_networks(m.management_prefixes, "mitigation.management_prefixes"),
        )
        self.mitigator = Mitigator(datapath, m, self.protection.protected)
        self.guard = guard_of(datapath.attach_info)
        self.syncookies = SyncookieState(None, None)  # read at start()
        self.sources = SourceWatcher(datapath, cfg.agent.top_sources, cfg.agent.source_idle_s)
        self.sampler = Sampler(datapath, cfg.capture, self.lock)
        self.seconds = Seconds(
            self.baseline, state_dir / "baseline.json", cfg.baseline.persist_interval_s, wall_clock
        )
        self.journal = IncidentJournal(state_dir / "incident.json")
        ln = cfg.link
        self.link = LinkWatch(
            cfg.agent.interface,
            SaturationSettings(ln.saturation_lost_pps, ln.saturation_s, ln.clear_s),
            wall_clock,
        )
        self.overrides = OverrideApplier(
            cfg,
            self.reference,
            self.detector,
            self.mitigator,
            self.protection,
            self.sampler,
            datapath,
            self.lock,
        )
        self.tools = Tools(
            cfg,
            datapath,
            self.lock,
            self.mitigator,
            self.protection,
            self.reference,
            self.sources,
            self.sink,
            self.journal,
            wall_clock,
            self.guard,
        )
        # The control plane's fleet orders (attacks spread over a group of nodes): taken
        # every window from the inbox the fleet watcher fills (None: no control plane).
        self.fleet_inbox = fleet_inbox
        self.fleet = FleetRules(
            self.mitigator,
            cfg.mitigation,
            self.protection.protected,
            self.reference.rate_limit,
            self.guard,
            self.lock,
            wall_clock,
        )
        # The kernel's wake-ups (None: polling only, [detection] kernel_wake = false).
        self.waker = Waker(datapath) if d.kernel_wake else None
        self._wake_pps = -1.0  # what the kernel was last asked for (-1: nothing yet)
        self.trigger: Trigger = "tick"  # of the last window
        self.prev: Counters | None = None
        self.windows: deque[Window] = deque(maxlen=64)
        self.last_window: Window | None = None
        self.response: IncidentResponse | None = None
        self.incidents_by_family: Counter[str] = Counter()
        self.started = time.monotonic()
        self._closed = False
        # The kernel's rules with their counters, for /metrics: read once a second and
        # after each change the loop made (not every window: a read walks every rule map).
        self._kernel_rules: tuple[Rule, ...] = ()
        self._kernel_rules_at_ns = 0
        self._xdp_attached = False
        # The control-plane reporter's state for the views, asked once a second (None:
        # stand-alone): the HTTP thread never calls the reporter.
        self.reporting = reporting
        self._reporting: ReportingState | None = None
        self._snap = self._build_snapshot()

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.syncookies = check_syncookies(self.cfg.mitigation.enable_syncookies)
        with self.lock:
            self.dp.set_allowlist(self.protection.kernel_allowlist())
            self.sampler.adjust(False, 0.0, force=True)
            self.prev = self.dp.read_counters()
        self.link.start()
        self._save_fleet_rules()  # none yet (a previous run's list is stale)
        self.sink.start(self.status())
        self._resolve_left_over_incident()
        self.sources.start()
        self._arm_wake()
        if self.waker is not None:
            self.waker.start()
        self._check_attached()
        self._ask_reporter()
        self._snapshot(read_rules=True)
        log.info(
            "agent started on %s (poll %d ms, mitigation %s, socket guard %s, baseline %s)",
            self.cfg.agent.interface,
            self.cfg.agent.poll_interval_ms,
            self.mitigator.mode,
            self.guard.reason,
            "ready" if self.baseline.ready else f"learning ({self.baseline.samples} s)",
        )

    def _resolve_left_over_incident(self) -> None:
        """An incident a previous run left active (it died): resolve it as last seen."""
        entry = self.journal.load()
        if entry is None:
            return
        r = entry.report
        figures = msgspec.structs.replace(r.figures, seq=r.figures.seq + 1)
        log.warning(
            "incident %s was left active by a previous run: resolved as of %.3f",
            r.uuid,
            entry.last_seen,
            extra={
                "event": "incident_resolved",
                "incident_uuid": r.uuid,
                "reason": "agent_restarted",
            },
        )
        self.sink.incident_resolved(
            msgspec.structs.replace(
                r, figures=figures, ended_at=entry.last_seen, reason="agent_restarted"
            )
        )
        self.journal.clear()

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, then resolve any incident, persist and close.

        Between two ticks the loop also waits for the kernel's wake-up: at most
        WAKE_WINDOWS_PER_TICK extra windows per tick interval (wake-ups that find no burst
        cost that much at most), none during an attack (the kernel sends none then). More
        than one: the first wake-up comes as the flood begins, and its window, which
        started at the last tick, dilutes the flood's rate; the next one (a slot later)
        reads it over a few milliseconds."""
        self.start()
        interval = self.cfg.agent.poll_interval_ms / 1000.0
        next_tick = time.monotonic() + interval
        failures = 0
        wakes_left = WAKE_WINDOWS_PER_TICK  # wake-up windows still allowed before the tick
        try:
            while not stop.is_set():
                delay = next_tick - time.monotonic()
                trigger: Trigger = "tick"
                if delay > 0:
                    if wakes_left and self.waker is not None:
                        if self.waker.woken.wait(delay):
                            trigger = "wake"
                    elif stop.wait(delay):
                        break
                    if stop.is_set():
                        break
                if self.waker is not None:
                    self.waker.woken.clear()  # this window reads what woke it
                try:
                    self.step(trigger)
                    failures = 0
                except Exception:
                    # A transient map or netlink error costs one window; a persistent one
                    # ends the run (exit 1: systemd restarts the agent).
                    failures += 1
                    log.exception("window failed (%d in a row)", failures)
                    if failures >= MAX_WINDOW_FAILURES:
                        raise
                if trigger == "wake":
                    wakes_left -= 1
                    continue
                wakes_left = WAKE_WINDOWS_PER_TICK
                next_tick += interval
                if time.monotonic() - next_tick > interval:  # fell behind: do not burst
                    next_tick = time.monotonic() + interval
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """A clean stop resolves the active incident ("agent_stopped"): the report is
        spooled like every other, so it reaches the control plane even if it is down."""
        if self._closed:
            return
        self._closed = True
        if self.waker is not None:
            self.waker.stop()
        self.sources.stop()
        if self.response is not None:
            self.response.resolve("agent_stopped", self.last_window)
            self.response = None
            self._snapshot()  # the views answer until the HTTP server closes
        self.seconds.save()
        self.link.close()
        self.sink.close()
        log.info("agent stopped")

    # ---- one window ---------------------------------------------------------------------

    def step(self, trigger: Trigger = "tick") -> Window | None:
        """One window. `trigger` "wake": the kernel's wake-up started it between two ticks
        (a short window: the detector's burst rule alone may confirm on it)."""
        self.trigger = trigger
        with self.lock:
            cur = self.dp.read_counters()
            samples = self.dp.poll_samples(SAMPLES_PER_POLL)
        prev, self.prev = self.prev, cur
        if prev is None:
            return None
        w = compute_window(prev, cur)
        self.windows.append(w)
        self.last_window = w
        parsed = self.sampler.take(samples, cur.read_at_ns)
        if self.response is not None:
            self.response.take_samples(samples, parsed)
        tr = self.detector.observe(
            w.metrics, self.reference.thresholds, cur.read_at_ns / 1e9,
            burst_only=trigger == "wake",
        )  # fmt: skip
        if tr is not None and tr.kind == "confirmed":
            self._open(tr, w)
            self._arm_wake()  # none during the attack
            self._snapshot()  # /health shows the incident now, not at the window's end
        elif self.response is not None:
            if tr is not None and tr.kind == "resolved":
                self._resolve()
            else:
                self.response.window(w, list(self.windows), self.sampler.recent_packets())
        self._take_fleet_orders(w)
        with self.lock:
            changes = self.mitigator.tick()
        self.sink.rules_changed(changes)
        # A fleet order in force: sample as in an attack, and learn nothing.
        hot = self.detector.attack or self.detector.pending or self.fleet.held
        self.sampler.adjust(hot, w.metrics["pps"])
        self._end_of_second(w, hot or tr is not None)
        self._arm_wake()
        # Every window, not once a second: a block command waits for no second's end.
        control = self.sink.poll_control()
        if control is not None:
            self.apply_control(control)
            self._read_kernel_rules()  # operator commands add and remove kernel rules
        self._snapshot()
        if self.on_window is not None:
            self.on_window(w, self)
        return w

    def _arm_wake(self) -> None:
        """Ask the kernel for wake-ups at the rate a burst would show (the thresholds move
        with the baseline and the control plane's overrides), none during an attack."""
        if self.waker is None:
            return
        want = 0.0 if self.detector.attack else wake_pps(
            self.reference.thresholds, self.detector.burst_factor)
        if want == self._wake_pps:
            return
        with self.lock:
            self.dp.set_wake_pps(want)
        self._wake_pps = want

    def _take_fleet_orders(self, w: Window) -> None:
        """Every window: the newest fleet answer (if any) planned, renewed or removed, and
        orders not renewed in time forgotten."""
        answer = self.fleet_inbox.take() if self.fleet_inbox is not None else None
        if answer is None and not self.fleet.orders:
            return

        def rates() -> dict[str, float]:
            # the node's current rate: the last second of windows
            last = [x for x in self.windows if x.end_ns > w.end_ns - 1_000_000_000] or [w]
            return merge_windows(last).metrics

        held = set(self.fleet.orders)
        changes = self.fleet.take(answer, rates, self.sampler.recent_packets)
        self.sink.rules_changed(changes)
        if changes or held != set(self.fleet.orders):
            self._save_fleet_rules()
            self._read_kernel_rules()

    def _save_fleet_rules(self) -> None:
        """For `ftagent rules` (another process): which kernel rules fleet orders keep."""
        fleet_state.save(self.state_dir / fleet_state.FILE, self.mitigator.fleet_owned())

    def _open(self, tr: Transition, w: Window) -> None:
        n = 1 if tr.reason == "burst" else self.reference.settings.confirm_windows
        hot = list(self.windows)[-n:]
        response = IncidentResponse(self.tools, tr, hot, self.sampler.recent_packets())
        self.response = response
        self.incidents_by_family[response.incident.family] += 1
        response.start(list(self.sampler.ring.items), self.pcap_dir, w)
        self._read_kernel_rules()

    def _resolve(self) -> None:
        assert self.response is not None
        self.response.resolve("cooled_down", self.last_window)
        self.response = None
        self.reference.refresh()
        self._read_kernel_rules()

    # ---- once a second ------------------------------------------------------------------

    def _end_of_second(self, w: Window, hot: bool) -> None:
        point = self.seconds.add(w, hot, self.detector.attack)
        if point is None:
            return
        link = self.link.second()
        point = msgspec.structs.replace(
            point, rx_lost_pps=round(link.rx_lost_pps, 1), link_saturated=link.saturated
        )
        self._read_kernel_rules()
        self._check_attached()
        self._ask_reporter()
        if self.fleet.orders:
            point = msgspec.structs.replace(point, fleet_rules=self.fleet_reports())
        if self.seconds.learned:
            self.reference.refresh()
        self.sink.metrics_second(point, self.status())

    def fleet_reports(self) -> list[agent_api.FleetRuleReport]:
        """The fleet orders' rules with their kernel counters as last read (this second's
        read, or the last that worked; none yet: zeros)."""
        return self.fleet.reports({r.spec: r for r in self._kernel_rules})

    def status(self) -> AgentStatus:
        w = self.last_window
        info = self.dp.attach_info
        return AgentStatus(
            interface=info.interface,
            xdp_mode=info.mode,
            baseline_state="ready" if self.baseline.ready else "learning",
            attack=self.detector.attack,
            pps=round(w.metrics["pps"], 1) if w else 0.0,
            rules_active=self.mitigator.active_count(),
            mitigation_mode=self.mitigator.mode,
        )

    def apply_control(self, control: agent_api.AgentConfig) -> None:
        """The control plane's settings and operator commands (acked through the sink)."""
        if control.commands:
            with self.lock:
                acks = [apply_command(c, self.dp, self.protection) for c in control.commands]
            self.sink.commands_done(acks)
        w = self.last_window
        try:
            self.overrides.apply(control, w.metrics["pps"] if w else 0.0)
        except ConfigError as exc:
            log.error("control-plane overrides refused: %s", exc)

    # ---- the views' snapshot ------------------------------------------------------------

    def _read_kernel_rules(self) -> None:
        """The kernel's rules and their counters, for the next snapshots (a failed read
        keeps the last one: the views show it as of then)."""
        try:
            with self.lock:
                rules = self.dp.list_rules()
                self._kernel_rules_at_ns = time.monotonic_ns()
        except Exception as exc:
            log.debug("rule counters unavailable: %s", exc)
            return
        self._kernel_rules = tuple(rules)

    def _check_attached(self) -> None:
        """Whether the kernel still runs our program on the interface (once a second)."""
        info = self.dp.attach_info
        if not info.prog_id:
            self._xdp_attached = False
            return
        from ftagent.bpf.xdp import NoSuchInterfaceError, ifindex_of, xdp_prog_id

        try:
            self._xdp_attached = xdp_prog_id(ifindex_of(info.interface)) == info.prog_id
        except NoSuchInterfaceError:  # the interface is gone: nothing is attached
            self._xdp_attached = False

    def _ask_reporter(self) -> None:
        """The reporter's state for the views (a failure keeps the last one: never a
        window lost to the views)."""
        if self.reporting is None:
            return
        try:
            self._reporting = self.reporting()
        except Exception as exc:
            log.debug("reporter state unavailable: %s", exc)

    def _snapshot(self, read_rules: bool = False) -> None:
        """Publish what the views show as of this window. One reference assignment: the
        HTTP thread sees the old snapshot or the new one, never a mix."""
        if read_rules:
            self._read_kernel_rules()
        with self.lock:
            snap = self._build_snapshot()
        self._snap = snap

    def snapshot(self) -> Snapshot:
        """The last snapshot (any thread; takes no lock)."""
        return self._snap

    def _build_snapshot(self) -> Snapshot:
        w = self.last_window
        info = self.dp.attach_info
        response = self.response
        b = self.baseline
        thresholds = dict(self.reference.thresholds)
        link = self.link.state
        health = Health(
            status="attack" if response is not None else "ok",
            version=ftagent.__version__,
            uptime_s=round(time.monotonic() - self.started, 1),
            interface=info.interface,
            xdp_mode=info.mode,
            prog_id=info.prog_id,
            pps=round(w.metrics["pps"], 1) if w else 0.0,
            bps=round(w.metrics["bps"], 1) if w else 0.0,
            dropped_pps=round(w.dropped_pps, 1) if w else 0.0,
            baseline_ready=b.ready,
            baseline_samples=b.samples,
            attack_active=response is not None,
            mitigation_mode=self.mitigator.mode,
            rules_active=self.mitigator.active_count(),
            rules=tuple(s.describe() for s in self.mitigator.rules),
            thresholds=shown_thresholds(thresholds),
            incident=incident_health(response.incident) if response is not None else None,
            fleet_orders=fleet_orders(self.fleet, self.wall()),
            incidents_total=sum(self.incidents_by_family.values()),
            link=link_health(link),
            socket_guard=self.guard.available,
            socket_guard_reason=self.guard.reason,
            udp_egress_learning=info.udp_egress_learning,
            udp_egress_error=info.udp_egress_error,
            tcp_syncookies=self.syncookies.value,
            warnings=warnings(self.guard, info, self.syncookies),
            control_plane=self._reporting,
        )
        metrics = MetricsView(
            counters=self.prev,
            rules=self._kernel_rules,
            rules_read_at_ns=self._kernel_rules_at_ns,
            baseline={
                m: Quantiles(b.stat(m).avg, b.stat(m).p95, b.stat(m).p99) for m in ("pps", "bps")
            },
            thresholds=thresholds,
            current_pps=w.metrics["pps"] if w else None,
            current_bps=w.metrics["bps"] if w else None,
            sample_one_in=self.sampler.sample_one_in,
            incidents=dict(self.incidents_by_family),
            link=link,
            xdp_attached=self._xdp_attached,
        )
        return Snapshot(started=self.started, health=health, metrics=metrics)

    def scrape_rules(self) -> list[Rule]:
        """The kernel's rules now (tests and tools; the views use the snapshot's)."""
        with self.lock:
            return self.dp.list_rules()

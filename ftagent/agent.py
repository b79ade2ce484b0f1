"""The agent loop: read counters -> window -> baseline -> detector -> classifier ->
mitigator -> capture -> event sink, once per poll interval (10 Hz by default).

Everything here runs in one thread; the local HTTP server reads a snapshot under a lock.
The sink is called with plain dicts and never awaited (it queues; see ftagent.events).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

import ftagent
from ftagent.baseline import Baseline
from ftagent.capture import PcapWriter, SampleRing, prune, sample_one_in
from ftagent.classifier import Classification, classify
from ftagent.config import (
    CaptureConfig,
    Config,
    ConfigError,
    Floors,
    parse_networks,
)
from ftagent.datapath import Counters, Datapath, IPAddress, IPNetwork, Sample
from ftagent.detector import Detector, Transition, compute_thresholds
from ftagent.events import EventSink, NullSink, Overrides
from ftagent.incident import Incident
from ftagent.mitigator import Mitigator, Protected, plan_rules, plan_widening, vector_metric
from ftagent.rates import METRICS, Window, average_windows, compute_window, merge_windows
from ftagent.samples import PacketInfo, parse, summarize
from ftagent.severity import severity
from ftagent.sources import SourceWatcher
from ftcontract.vocabulary import MITIGATION_MODES, Severity, severity_rank

log = logging.getLogger("ftagent.agent")

SAMPLES_PER_POLL = 4096
RECENT_PACKETS_S = 1.0
INCIDENT_SOURCES_MAX = 100_000
UPDATE_INTERVAL_S = 1.0
MAX_WINDOW_FAILURES = 50


@dataclass(slots=True)
class Settings:
    """Detection settings the control plane may override at run time."""

    multiplier: float
    burst_factor: float
    confirm_windows: int
    cooldown_s: float
    floors: Floors


def effective_sampling(capture: CaptureConfig, o: Overrides) -> tuple[int, int]:
    """(idle, attack) sampled packets per second after the control plane's overrides.

    None keeps the config's value (so clearing an override on the control plane restores
    it); the result is checked like the config (ConfigError names the key).
    """
    idle = capture.idle_samples_per_s if o.idle_samples_per_s is None else o.idle_samples_per_s
    attack = (
        capture.attack_samples_per_s if o.attack_samples_per_s is None else o.attack_samples_per_s
    )
    if idle < 0:
        raise ConfigError(f"control.sampling.idle_samples_per_s: must be >= 0 (got {idle})")
    if attack < 1:
        raise ConfigError(f"control.sampling.attack_samples_per_s: must be >= 1 (got {attack})")
    if attack < idle:
        raise ConfigError(
            "control.sampling.attack_samples_per_s: must be >= idle_samples_per_s "
            f"({attack} < {idle})"
        )
    return idle, attack


_T = TypeVar("_T")


def _pick(override: _T | None, local: _T) -> _T:
    return local if override is None else override


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
    ) -> None:
        self.cfg = cfg
        self.dp = datapath
        self.sink: EventSink = sink or NullSink()
        self.on_window = on_window
        self.wall = wall_clock
        # Datapath access and the health snapshot; pass the sink's lock so that operator
        # commands it applies share it (ftagent.report.sink.ControlSink).
        self.lock = lock if lock is not None else threading.RLock()
        self.state_dir = Path(cfg.agent.state_dir)
        self.baseline_path = self.state_dir / "baseline.json"
        self.pcap_dir = self.state_dir / "pcap"
        d = cfg.detection
        self.settings = Settings(
            d.multiplier, d.burst_factor, d.confirm_windows, d.cooldown_s, d.floors
        )
        loaded, why_not = Baseline.load_with_reason(self.baseline_path, cfg.baseline)
        self.baseline = loaded or Baseline(cfg.baseline)
        if loaded is not None:
            log.info("baseline restored: %d seconds", loaded.samples)
        elif self.baseline_path.exists():
            # Say why: the operator sees the agent learning again after a restart.
            log.warning(
                "saved baseline %s not used, learning a fresh one: %s", self.baseline_path, why_not
            )
        else:
            log.info("no saved baseline: learning a fresh one")
        self.detector = Detector(d.confirm_windows, d.burst_factor, d.cooldown_s)
        self.control_networks = list(control_networks or [])
        self.mgmt_networks = parse_networks(
            cfg.mitigation.management_prefixes, "mitigation.management_prefixes"
        )
        self.allowlist = parse_networks(cfg.mitigation.allowlist, "mitigation.allowlist")
        self.own_networks = list(own_networks or [])
        self.protected = Protected()
        self._build_protected()
        self.mitigator = Mitigator(datapath, cfg.mitigation, self.protected)
        self.sources = SourceWatcher(datapath, cfg.agent.top_sources, cfg.agent.source_idle_s)
        self.thresholds = compute_thresholds(
            self.baseline, self.settings.floors, self.settings.multiplier, self.wall()
        )
        self.prev: Counters | None = None
        self.windows: deque[Window] = deque(maxlen=64)
        self.second_windows: list[Window] = []
        self.second_hot = False
        self.second_started = time.monotonic()
        self.ring = SampleRing(cfg.capture.pre_attack_s)
        self.recent: deque[tuple[int, PacketInfo]] = deque(maxlen=20000)
        self.incident: Incident | None = None
        self.incident_sources: Counter[IPAddress] = Counter()
        self.incident_sampled = 0
        self.passed_since_change: list[PacketInfo] = []
        self.windows_since_change = 0
        self.leaks: dict[str, deque[float]] = {}
        self.widen_failed: set[str] = set()
        self.pcap: PcapWriter | None = None
        self.sample_one_in = -1
        # Sampling targets in effect: [capture]'s, or the control plane's overrides.
        self.idle_samples_per_s = cfg.capture.idle_samples_per_s
        self.attack_samples_per_s = cfg.capture.attack_samples_per_s
        self.incidents_by_family: Counter[str] = Counter()
        self.started = time.monotonic()
        self.last_persist = time.monotonic()
        self.last_update = 0.0
        self._last_window: Window | None = None
        self._health: dict[str, Any] = {}
        self._closed = False

    # ---- protection and overrides -------------------------------------------------------

    def _build_protected(self) -> None:
        self.protected.entries.clear()
        self.protected.add(self.allowlist, "allow-list")
        self.protected.add(self.control_networks, "control-plane address")
        self.protected.add(self.own_networks, "node's own address")
        self.protected.add(self.mgmt_networks, "management prefix")

    def kernel_allowlist(self) -> list[IPNetwork]:
        # Own addresses are not allow-listed: a spoofed flood may claim them as source.
        out: list[IPNetwork] = []
        for n in (*self.allowlist, *self.control_networks, *self.mgmt_networks):
            if n not in out:
                out.append(n)
        return out

    def apply_overrides(self, o: Overrides) -> None:
        # Checked before anything is applied: bad sampling values change no setting.
        idle, attack = effective_sampling(self.cfg.capture, o)
        # Each call carries the control plane's whole set: a key it leaves out (None) goes
        # back to this node's own config, so clearing an override really clears it.
        d, m = self.cfg.detection, self.cfg.mitigation
        s = self.settings
        s.multiplier = _pick(o.multiplier, d.multiplier)
        s.burst_factor = self.detector.burst_factor = _pick(o.burst_factor, d.burst_factor)
        s.confirm_windows = self.detector.confirm_windows = _pick(
            o.confirm_windows, d.confirm_windows
        )
        s.cooldown_s = self.detector.cooldown_s = _pick(o.cooldown_s, d.cooldown_s)
        floors = {k: float(v) for k, v in (o.floors or {}).items() if hasattr(d.floors, k)}
        s.floors = msgspec.structs.replace(d.floors, **floors)
        self.mitigator.ttl_s = _pick(o.rule_ttl_s, m.rule_ttl_s)
        allowlist = parse_networks(_pick(o.allowlist, m.allowlist), "control.allowlist")
        if allowlist != self.allowlist:
            self.allowlist = allowlist
            self._build_protected()
            with self.lock:
                self.dp.set_allowlist(self.kernel_allowlist())
        mode = _pick(o.mitigation_mode, m.mode)
        if mode != self.mitigator.mode and mode in MITIGATION_MODES:
            log.info("mitigation mode %s -> %s (control plane)", self.mitigator.mode, mode)
            if mode != "on":
                with self.lock:
                    self.mitigator.remove_all()
            self.mitigator.mode = mode
        if (idle, attack) != (self.idle_samples_per_s, self.attack_samples_per_s):
            log.info(
                "sampling %d/%d -> %d/%d per s idle/attack (control plane)",
                self.idle_samples_per_s,
                self.attack_samples_per_s,
                idle,
                attack,
            )
            self.idle_samples_per_s, self.attack_samples_per_s = idle, attack
            w = self._last_window
            self._set_sampling(self._sampling_target(), w.metrics["pps"] if w else 0.0, force=True)
        if not self.detector.attack:
            self._refresh_thresholds()
        log.info("control-plane overrides applied", extra={"overrides": msgspec.to_builtins(o)})

    def _refresh_thresholds(self) -> None:
        self.thresholds = compute_thresholds(
            self.baseline, self.settings.floors, self.settings.multiplier, self.wall()
        )

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            self.dp.set_allowlist(self.kernel_allowlist())
            self._set_sampling(self.idle_samples_per_s, 0.0, force=True)
            self.prev = self.dp.read_counters()
        self.sink.start()
        self.sources.start()
        self._snapshot()
        log.info(
            "agent started on %s (poll %d ms, mitigation %s, baseline %s)",
            self.cfg.agent.interface,
            self.cfg.agent.poll_interval_ms,
            self.mitigator.mode,
            "ready" if self.baseline.ready else f"learning ({self.baseline.samples} s)",
        )

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set, then persist and close the incident bookkeeping."""
        self.start()
        interval = self.cfg.agent.poll_interval_ms / 1000.0
        next_tick = time.monotonic() + interval
        failures = 0
        try:
            while not stop.is_set():
                delay = next_tick - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                try:
                    self.step()
                    failures = 0
                except Exception:
                    # A transient map or netlink error costs one window; a persistent one
                    # ends the run (exit 1: systemd restarts the agent).
                    failures += 1
                    log.exception("window failed (%d in a row)", failures)
                    if failures >= MAX_WINDOW_FAILURES:
                        raise
                next_tick += interval
                if time.monotonic() - next_tick > interval:  # fell behind: do not burst
                    next_tick = time.monotonic() + interval
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sources.stop()
        if self.incident is not None:
            self._close_pcap(self.incident)
        try:
            self.baseline.save(self.baseline_path)
        except OSError as exc:
            log.error("could not persist the baseline: %s", exc)
        self._emit(self.sink.close)
        log.info("agent stopped")

    # ---- one window ---------------------------------------------------------------------

    def step(self) -> Window | None:
        with self.lock:
            cur = self.dp.read_counters()
            samples = self.dp.poll_samples(SAMPLES_PER_POLL)
        prev, self.prev = self.prev, cur
        if prev is None:
            return None
        w = compute_window(prev, cur)
        self.windows.append(w)
        self._last_window = w
        self._take_samples(samples, cur.read_at_ns)
        now_s = cur.read_at_ns / 1e9
        tr = self.detector.observe(w.metrics, self.thresholds, now_s)
        if self.detector.pending or tr is not None:
            self.second_hot = True
        if tr is not None and tr.kind == "confirmed":
            self._open_incident(tr, w)
        elif self.incident is not None:
            self.incident.observe(w)
            if tr is not None and tr.kind == "resolved":
                self._resolve_incident()
            else:
                self._during_attack(w, samples)
        self._emit_rule_changes(self.mitigator_tick())
        self._adjust_sampling(w)
        self._end_of_second(w)
        if self.on_window is not None:
            self.on_window(w, self)
        return w

    def mitigator_tick(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.mitigator.tick()

    def _take_samples(self, samples: list[Sample], now_ns: int) -> None:
        if not samples:
            self.ring.extend((), now_ns)
            return
        self.ring.extend(samples, now_ns)
        parsed = [(s.timestamp_ns, parse(s)) for s in samples]
        self.recent.extend(parsed)
        cutoff = now_ns - int(RECENT_PACKETS_S * 1e9)
        while self.recent and self.recent[0][0] < cutoff:
            self.recent.popleft()
        if self.incident is not None:
            if self.pcap is not None and not self.pcap.full:
                self.pcap.write(samples)
            for _, p in parsed:
                if p.src is not None and len(self.incident_sources) < INCIDENT_SOURCES_MAX:
                    self.incident_sources[p.src] += 1
            self.incident_sampled += len(parsed)
            self.passed_since_change.extend(p for _, p in parsed if p.verdict == "passed")
            del self.passed_since_change[:-20000]

    # ---- incidents ----------------------------------------------------------------------

    def _base_avgs(self) -> dict[str, float]:
        if not self.baseline.ready:
            return {}
        return {m: self.baseline.stat(m).avg for m in METRICS}

    def _rate_limit(self, metric: str) -> int:
        p99 = self.baseline.effective_p99(metric, self.wall())
        return max(self.cfg.mitigation.rate_limit_min_pps, int(self.settings.multiplier * p99))

    def _severity(self, inc: Incident) -> Severity:
        ref_pps = max(self.baseline.effective_p99("pps", self.wall()), self.settings.floors.pps)
        ref_bps = max(self.baseline.effective_p99("bps", self.wall()), self.settings.floors.bps)
        return severity(
            self.cfg.severity,
            inc.peak_pps,
            inc.peak_bps,
            ref_pps,
            ref_bps,
            inc.family == "multi_vector",
        )

    def _open_incident(self, tr: Transition, w: Window) -> None:
        hot = list(self.windows)[-(1 if tr.reason == "burst" else self.settings.confirm_windows) :]
        merged = merge_windows(hot)
        packets = [p for _, p in self.recent]
        cls = classify(
            merged, self._base_avgs(), summarize(packets), self.cfg.mitigation.max_source_rules
        )
        cls.evidence["over_threshold"] = {k: round(v, 2) for k, v in tr.over.items()}
        inc = Incident(
            classification=cls,
            severity="low",
            started_mono=time.monotonic(),
            started_at=self.wall() - sum(x.duration_s for x in hot),
            interface=self.cfg.agent.interface,
            baseline_pps=self.baseline.effective_p99("pps", self.wall()),
            threshold_pps=self.thresholds["pps"],
            confirm_reason=tr.reason,
            mitigation_mode=self.mitigator.mode,
        )
        for x in hot:
            inc.observe(x)
        inc.severity = self._severity(inc)
        self.incident = inc
        self.widen_failed = set()
        self.incidents_by_family[inc.family] += 1
        self.incident_sources = Counter(p.src for p in packets if p.src is not None)
        self.incident_sampled = len(packets)
        self._update_sources(inc, w)
        self.sources.set_active(True)
        log.warning(
            "incident opened: %s (%s) severity %s, %.0f pps, confirmed by %s",
            inc.family,
            cls.subtype,
            inc.severity,
            inc.peak_pps,
            tr.reason,
            extra={
                "event": "incident_opened",
                "incident_uuid": inc.uuid,
                "family": inc.family,
                "subtype": cls.subtype,
                "severity": inc.severity,
                "peak_pps": round(inc.peak_pps),
                "over": tr.over,
            },
        )
        self._mitigate(inc, cls, packets, "confirmed " + cls.family)
        self._open_pcap(inc)
        self._emit(self.sink.incident_opened, inc.to_dict())
        self.last_update = time.monotonic()
        self._snapshot()

    def _mitigate(
        self, inc: Incident, cls: Classification, packets: list[PacketInfo], reason: str
    ) -> None:
        plan = plan_rules(cls, packets, self.cfg.mitigation, self.protected, self._rate_limit)
        for r in plan.refused:
            log.warning(
                "refused a rule for %s: %s",
                r["target"],
                r["reason"],
                extra={"event": "rule_refused", "incident_uuid": inc.uuid, **r},
            )
        if self.mitigator.mode == "off":
            inc.record(
                "none",
                "mitigation off; would have added: " + ", ".join(s.describe() for s in plan.rules),
            )
            return
        with self.lock:
            changes = self.mitigator.apply(plan.rules, inc.uuid, reason)
        inc.rules = [s.describe() for s in self.mitigator.rules_of(inc.uuid)]
        action = "dry_run" if self.mitigator.mode == "dry_run" else "rules_added"
        inc.record(action, "; ".join(plan.notes) or reason, [c["rule"] for c in changes])
        if plan.refused:
            inc.record("refused", "protected targets", [r["target"] for r in plan.refused])
        self._emit_rule_changes(changes)
        self.windows_since_change = 0
        self.leaks = {}
        self.passed_since_change = []

    def _during_attack(self, w: Window, samples: list[Sample]) -> None:
        inc = self.incident
        assert inc is not None
        self.windows_since_change += 1
        if (
            self.mitigator.mode == "on"
            and self.windows_since_change >= self.cfg.mitigation.verify_windows
        ):
            self._verify(inc, w)
        now = time.monotonic()
        if now - self.last_update < UPDATE_INTERVAL_S:
            return
        self.last_update = now
        escalated = False
        # Re-read the attack over the last second: a new vector turns it multi_vector.
        last = [x for x in self.windows if x.end_ns >= w.end_ns - 1_000_000_000]
        packets = [p for _, p in self.recent]
        merged = merge_windows(last)
        cls = classify(
            merged, self._base_avgs(), summarize(packets), self.cfg.mitigation.max_source_rules
        )
        old_families = {v.family for v in inc.classification.vectors}
        # A new vector counts only while it is itself above its threshold (not the noise
        # left in the cool-down once the flood has stopped).
        new_vectors = [
            v
            for v in cls.vectors
            if v.family not in old_families
            and v.family != "unknown"
            and merged.metrics.get(vector_metric(v), 0.0)
            > self.thresholds.get(vector_metric(v), float("inf"))
        ]
        if new_vectors:
            vectors = (*inc.classification.vectors, *new_vectors)
            fams = list(dict.fromkeys(v.family for v in vectors if v.family != "unknown"))
            family = "multi_vector" if len(fams) > 1 else fams[0]
            merged_ev = {
                **inc.classification.evidence,
                "later_vectors": [v.family for v in new_vectors],
            }
            inc.classification = Classification(
                family,
                "+".join(fams) if len(fams) > 1 else inc.classification.subtype,
                vectors,
                merged_ev,
            )
            escalated = True
            log.warning(
                "incident %s gained vector(s) %s",
                inc.uuid,
                ", ".join(v.family for v in new_vectors),
                extra={"event": "incident_escalated", "incident_uuid": inc.uuid, "family": family},
            )
            self._mitigate(
                inc, Classification(family, "", tuple(new_vectors), {}), packets, "new vector"
            )
        sev = self._severity(inc)
        if severity_rank(sev) > severity_rank(inc.severity):
            log.warning(
                "incident %s escalated: %s -> %s (peak %.0f pps)",
                inc.uuid,
                inc.severity,
                sev,
                inc.peak_pps,
                extra={
                    "event": "incident_escalated",
                    "incident_uuid": inc.uuid,
                    "severity": sev,
                    "previous": inc.severity,
                },
            )
            inc.severity = sev
            escalated = True
        if escalated:
            inc.escalations += 1
        self._update_sources(inc, w)
        self._emit(self.sink.incident_updated, inc.to_dict(), escalated)

    def _verify(self, inc: Incident, w: Window) -> None:
        """Does the attack still get through? Widen if it does, for verify_windows windows."""
        # Judge each vector on its mean leak over its last `verify_windows` windows that
        # carried attack traffic: floods come in pulses, and one quiet or fully dropped
        # window must neither hide nor prove a leak.
        n = self.cfg.mitigation.verify_windows
        leaking = []
        for v in inc.classification.vectors:
            metric = vector_metric(v)
            threshold = self.thresholds.get(metric, float("inf"))
            rate = w.metrics.get(metric, 0.0)
            if rate <= threshold:
                continue
            leaks = self.leaks.setdefault(v.family, deque(maxlen=n))
            leaks.append(rate - w.dropped_pps)
            mean_leak = sum(leaks) / len(leaks)
            if len(leaks) >= n and mean_leak > threshold:
                leaking.append((v, mean_leak))
        if not leaking:
            return
        self.leaks = {}
        self.windows_since_change = 0
        current = self.mitigator.rules_of(inc.uuid)
        for v, leak in leaking:
            plan = plan_widening(
                v,
                self.passed_since_change,
                current,
                self.cfg.mitigation,
                self.protected,
                self._rate_limit,
            )
            if not plan.rules:
                if v.family not in self.widen_failed:  # once per vector, not every check
                    self.widen_failed.add(v.family)
                    inc.record(
                        "widen_failed",
                        f"{v.family} leaks {leak:.0f} pps; " + "; ".join(plan.notes),
                    )
                continue
            with self.lock:
                changes = self.mitigator.apply(
                    plan.rules, inc.uuid, f"widen: {v.family} leaks", label="widened"
                )
            inc.record(
                "widened",
                f"{v.family} leaked {leak:.0f} pps; " + "; ".join(plan.notes),
                [c["rule"] for c in changes],
            )
            log.warning(
                "incident %s: mitigation widened (%s)",
                inc.uuid,
                "; ".join(plan.notes),
                extra={
                    "event": "mitigation_widened",
                    "incident_uuid": inc.uuid,
                    "rules": [c["rule"] for c in changes],
                },
            )
            self._emit_rule_changes(changes)
        inc.rules = [s.describe() for s in self.mitigator.rules_of(inc.uuid)]
        self.passed_since_change = []

    def _update_sources(self, inc: Incident, w: Window | None) -> None:
        """Top sources: the kernel map's busiest (with rates once read twice), else the
        sampled packets' (share x current rate); the source count is from the samples."""
        total = sum(self.incident_sources.values())
        inc.source_count = len(self.incident_sources)
        sampled = (
            {
                str(a): c / total
                for a, c in self.incident_sources.most_common(self.cfg.agent.top_sources)
            }
            if total
            else {}
        )
        kernel = self.sources.latest()
        if kernel:
            inc.top_sources = [
                {**e, "sample_share": round(sampled.get(e["address"], 0.0), 4)} for e in kernel
            ]
            return
        pps = w.metrics["pps"] if w is not None else 0.0
        inc.top_sources = [
            {"address": a, "sample_share": round(share, 4), "pps": round(pps * share, 1)}
            for a, share in sampled.items()
        ]

    def _resolve_incident(self) -> None:
        inc = self.incident
        assert inc is not None
        inc.status = "resolved"
        inc.ended_at = self.wall()
        self._update_sources(inc, self._last_window)
        self.sources.set_active(False)
        self.mitigator.release(inc.uuid)
        if inc.rules:
            inc.record(
                "released", f"rules removed after hold-down {self.cfg.mitigation.holddown_s}s"
            )
        self._close_pcap(inc)
        log.warning(
            "incident resolved: %s after %.1f s, peak %.0f pps, severity %s",
            inc.family,
            inc.ended_at - inc.started_at,
            inc.peak_pps,
            inc.severity,
            extra={
                "event": "incident_resolved",
                "incident_uuid": inc.uuid,
                "family": inc.family,
                "severity": inc.severity,
                "peak_pps": round(inc.peak_pps),
                "duration_s": round(inc.ended_at - inc.started_at, 3),
            },
        )
        self._emit(self.sink.incident_resolved, inc.to_dict())
        self.incident = None
        self.incident_sources = Counter()
        self._refresh_thresholds()
        self._snapshot()

    # ---- capture ------------------------------------------------------------------------

    def _open_pcap(self, inc: Incident) -> None:
        if not self.cfg.capture.enabled:
            return
        try:
            path = self.pcap_dir / f"{inc.uuid}.pcap"
            self.pcap = PcapWriter(path, self.cfg.capture.max_packets, self.cfg.capture.max_bytes)
            self.pcap.write(list(self.ring.items))
            inc.pcap_path = str(path)
        except OSError as exc:
            log.error("cannot write pcap: %s", exc)
            self.pcap = None

    def _close_pcap(self, inc: Incident) -> None:
        if self.pcap is None:
            return
        try:
            self.pcap.close()
        except OSError as exc:
            log.error("cannot finish pcap %s: %s", self.pcap.path, exc)
            self.pcap = None
            return
        log.info(
            "pcap written: %s (%d packets)",
            self.pcap.path,
            self.pcap.packets,
            extra={
                "event": "pcap_ready",
                "incident_uuid": inc.uuid,
                "path": str(self.pcap.path),
                "packets": self.pcap.packets,
            },
        )
        self._emit(self.sink.pcap_ready, inc.uuid, str(self.pcap.path))
        self.pcap = None
        prune(self.pcap_dir, self.cfg.capture.keep_files)

    def _set_sampling(self, target: int, pps: float, force: bool = False) -> None:
        one_in = sample_one_in(pps, target)
        old = self.sample_one_in
        # Only touch the map when the ratio moves by 2x or more (or sampling turns on/off).
        if (
            force
            or (one_in == 0) != (old == 0)
            or old <= 0
            or one_in >= 2 * old
            or 2 * one_in <= old
        ):
            with self.lock:
                self.dp.set_sample_rate(one_in)
            self.sample_one_in = one_in

    def _sampling_target(self) -> int:
        hot = self.detector.attack or self.detector.pending
        return self.attack_samples_per_s if hot else self.idle_samples_per_s

    def _adjust_sampling(self, w: Window) -> None:
        self._set_sampling(self._sampling_target(), w.metrics["pps"])

    # ---- once a second ------------------------------------------------------------------

    def _end_of_second(self, w: Window) -> None:
        self.second_windows.append(w)
        now = time.monotonic()
        if now - self.second_started < 1.0:
            return
        point = average_windows(self.second_windows)
        at = self.wall()
        quiet = not self.second_hot and not self.detector.attack
        if quiet:
            self.baseline.add_second(point, at)
            self._refresh_thresholds()
        dropped_pps = sum(x.dropped_pps * x.duration_s for x in self.second_windows)
        dropped_bps = sum(x.dropped_bps * x.duration_s for x in self.second_windows)
        secs = sum(x.duration_s for x in self.second_windows) or 1.0
        self.second_windows = []
        self.second_hot = False
        self.second_started = now
        out: dict[str, Any] = {
            k: round(v, 1) for k, v in point.items() if not k.startswith("amp_") or v
        }
        out.update(
            ts=at,
            dropped_pps=round(dropped_pps / secs, 1),
            dropped_bps=round(dropped_bps / secs, 1),
            baseline_ready=self.baseline.ready,
            attack_active=self.detector.attack,
            rules_active=self.mitigator.active_count(),
            baseline={m: self._stat_dict(m) for m in ("pps", "bps")},
        )
        self._emit(self.sink.metrics_second, out)
        overrides = self._emit(self.sink.poll_overrides)
        if overrides is not None:
            try:
                self.apply_overrides(overrides)
            except ConfigError as exc:
                log.error("control-plane overrides refused: %s", exc)
        if now - self.last_persist >= self.cfg.baseline.persist_interval_s:
            self.last_persist = now
            try:
                self.baseline.save(self.baseline_path)
            except OSError as exc:
                log.error("could not persist the baseline: %s", exc)
        self._snapshot()

    def _stat_dict(self, metric: str) -> dict[str, float]:
        st = self.baseline.stat(metric)
        return {"avg": round(st.avg, 1), "p95": round(st.p95, 1), "p99": round(st.p99, 1)}

    def _emit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the sink; a failing reporter must never stop detection or mitigation."""
        try:
            return fn(*args)
        except Exception:
            log.exception("event sink %s failed", getattr(fn, "__name__", fn))
            return None

    def _emit_rule_changes(self, changes: list[dict[str, Any]]) -> None:
        for c in changes:
            self._emit(self.sink.rule_changed, c)

    # ---- views for HTTP / status --------------------------------------------------------

    def _snapshot(self) -> None:
        w = self._last_window
        inc = self.incident
        info = self.dp.attach_info
        health = {
            "status": "attack" if inc is not None else "ok",
            "version": ftagent.__version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "interface": info.interface,
            "xdp_mode": info.mode,
            "prog_id": info.prog_id,
            "pps": round(w.metrics["pps"], 1) if w else 0.0,
            "bps": round(w.metrics["bps"], 1) if w else 0.0,
            "dropped_pps": round(w.dropped_pps, 1) if w else 0.0,
            "baseline_ready": self.baseline.ready,
            "baseline_samples": self.baseline.samples,
            "attack_active": inc is not None,
            "mitigation_mode": self.mitigator.mode,
            "rules_active": self.mitigator.active_count(),
            "rules": [s.describe() for s in self.mitigator.rules],
            "thresholds": {
                k: round(v, 1)
                for k, v in self.thresholds.items()
                if k in ("pps", "bps", "udp_pps", "syn_pps", "icmp_pps")
            },
            "incident": None
            if inc is None
            else {
                "uuid": inc.uuid,
                "family": inc.family,
                "subtype": inc.classification.subtype,
                "severity": inc.severity,
                "started_at": inc.to_dict()["started_at"],
                "peak_pps": round(inc.peak_pps),
                "rules": list(inc.rules),
            },
            "incidents_total": sum(self.incidents_by_family.values()),
        }
        with self.lock:
            self._health = health

    def health(self) -> dict[str, Any]:
        with self.lock:
            h = dict(self._health)
        h["uptime_s"] = round(time.monotonic() - self.started, 1)
        return h

    def gauges(self) -> dict[str, Any]:
        w = self._last_window
        return {
            "baseline": {
                m: {
                    "avg": self.baseline.stat(m).avg,
                    "0.95": self.baseline.stat(m).p95,
                    "0.99": self.baseline.stat(m).p99,
                }
                for m in ("pps", "bps")
            },
            "thresholds": dict(self.thresholds),
            "current": {"pps": w.metrics["pps"], "bps": w.metrics["bps"]} if w else {},
            "baseline_ready": int(self.baseline.ready),
            "attack_active": int(self.incident is not None),
            "sample_one_in": self.sample_one_in,
            "uptime_s": time.monotonic() - self.started,
            "incidents": dict(self.incidents_by_family),
        }

    def scrape_counters(self) -> Counters:
        with self.lock:
            return self.dp.read_counters()

    def scrape_rules_active(self) -> int:
        now = time.monotonic_ns()
        with self.lock:
            return sum(1 for r in self.dp.list_rules() if r.expires_ns > now)

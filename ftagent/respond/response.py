"""`IncidentResponse`: one incident's response, from confirmation to resolution.

Created when the detector confirms an attack, dropped when it resolves, so its state
(leak history, packets passed since the last rule change, widen failures, the incident's
sources, its pcap) starts empty for every incident and is never reset by hand.

- open: classify the hot windows and the last second of sampled packets, plan and apply
  rules, start the pcap;
- every window: verify (does the attack still get through the rules? widen if it does);
- at most once a second: reclassify (a new vector makes it multi_vector), escalate the
  severity, refresh the top sources, report;
- resolve: release the rules for their hold-down, close the pcap, report the end.

The opening report goes out at confirmation and never waits for the severity: the first
window of an attack is only partly filled (a kernel wake-up's window is short), so the
severity judged then is provisional, and the first full window refines it in an update
that is not an escalation (`escalated=False`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ftagent.config import Config
from ftagent.datapath import Datapath, IPAddress, Rule, RuleSpec, Sample
from ftagent.detect.detector import Transition
from ftagent.detect.rates import Window, merge_windows
from ftagent.detect.reference import Reference
from ftagent.evidence.capture import IncidentPcap
from ftagent.evidence.classifier import Classification, classify
from ftagent.evidence.samples import PacketInfo, summarize
from ftagent.evidence.signatures import spared_may_be_attack
from ftagent.evidence.sources import SourceWatcher, top_source_figures
from ftagent.mitigate.guard import NO_GUARD, SocketGuard
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.planning import matches_rule, plan_rules, plan_widening, vector_metric
from ftagent.mitigate.protection import Protection
from ftagent.respond.incident import Incident, rule_figure
from ftagent.respond.journal import IncidentJournal
from ftagent.respond.shield import ShieldedSink
from ftcontract import agent_api
from ftcontract.vocabulary import ResolveReason, severity_rank

log = logging.getLogger("ftagent.agent")

INCIDENT_SOURCES_MAX = 100_000
PASSED_KEPT = 20_000
UPDATE_INTERVAL_S = 1.0


@dataclass(slots=True)
class Tools:
    """What an incident response works with: the agent's long-lived objects."""

    cfg: Config
    datapath: Datapath
    lock: threading.RLock  # the datapath lock
    mitigator: Mitigator
    protection: Protection
    reference: Reference
    sources: SourceWatcher
    sink: ShieldedSink
    journal: IncidentJournal
    wall: Callable[[], float]
    guard: SocketGuard = NO_GUARD  # what the data path's rules may spare


class IncidentResponse:
    def __init__(self, tools: Tools, tr: Transition, hot: list[Window], packets: list[PacketInfo]):
        self.t = tools
        cfg, ref = tools.cfg, tools.reference
        cls = classify(
            merge_windows(hot), ref.base_avgs(), summarize(packets), cfg.mitigation.max_source_rules
        )
        cls.evidence["over_threshold"] = {k: round(v, 2) for k, v in tr.over.items()}
        now = tools.wall()
        self.incident = inc = Incident(
            classification=cls,
            started_at=now - sum(x.duration_s for x in hot),
            interface=cfg.agent.interface,
            baseline_pps=ref.baseline.effective_p99("pps", now),
            threshold_pps=ref.thresholds["pps"],
            confirm_reason=tr.reason,
            mitigation_mode=tools.mitigator.mode,
        )
        for x in hot:
            inc.observe(x)
        self.sources: Counter[IPAddress] = Counter(p.src for p in packets if p.src is not None)
        self.passed_since_change: list[PacketInfo] = []
        self.windows_since_change = 0
        self.leaks: dict[str, deque[float]] = {}
        self.widen_failed: set[str] = set()
        self.pcap: IncidentPcap | None = None
        # Rule counters at the last look (spec -> spared packets) and the seconds of
        # windows seen since: what the rules spared per second is not always a leak (see
        # _benign_spared_pps). Windows tile the kernel's time, so their durations are it.
        self.spared_mark: dict[RuleSpec, int] = {}
        self.spared_seconds = 0.0
        self.opened_reported = False
        self.severity_settled = False  # the first full window refines the opening's
        self.last_update = time.monotonic()
        tools.sources.set_active(True)
        self._mitigate(cls, packets, "confirmed " + cls.family)

    @property
    def uuid(self) -> str:
        return self.incident.uuid

    # ---- reports ---------------------------------------------------------------------

    def _kernel_rules(self) -> dict[RuleSpec, Rule]:
        """The kernel's rules with their counters (read under the lock); {} when the read
        fails (a map read failing must not stop a report or a check)."""
        try:
            with self.t.lock:
                return {r.spec: r for r in self.t.datapath.list_rules()}
        except Exception as exc:
            log.debug("rule counters unavailable: %s", exc)
            return {}

    def _rule_figures(self) -> list[agent_api.RuleFigure]:
        """The incident's rules with their kernel counts: dropped and spared."""
        specs = self.incident.rules
        kernel = self._kernel_rules() if specs else {}
        ttl = self.t.mitigator.ttl_s
        figures = []
        for s in specs:
            r = kernel.get(s)
            dropped, spared = (r.dropped_packets, r.spared_packets) if r is not None else (0, 0)
            figures.append(rule_figure(s, ttl, dropped, spared))
        return figures

    def _mark_spared(self) -> dict[RuleSpec, Rule]:
        """Note the rules' spared counts now (after a rule change: a replaced rule's spec
        is new but its kernel counters are not)."""
        kernel = self._kernel_rules()
        self.spared_mark = {s: r.spared_packets for s, r in kernel.items()}
        self.spared_seconds = 0.0
        return kernel

    def _benign_spared_pps(self) -> dict[str, float]:
        """Per vector family: packets per second its rules spared since the last look that
        cannot be the attack (signatures.spared_may_be_attack): SYNs handed to the kernel's
        SYN cookies, segments of real connections, answers to the node's own queries,
        known sources. The leak check leaves them out; a UDP rule sparing any socket is
        not left out, so a spoofed flood at an open UDP port still leaks (and widens)."""
        before, seconds = self.spared_mark, self.spared_seconds
        kernel = self._mark_spared()
        out: dict[str, float] = {}
        if seconds <= 0:
            return out
        for v in self.incident.classification.vectors:
            spared = sum(
                r.spared_packets - before.get(s, 0)
                for s, r in kernel.items()
                if s in self.incident.rules and matches_rule(v, s) and not spared_may_be_attack(s)
            )
            out[v.family] = max(0.0, spared / seconds)
        return out

    def _refresh_sources(self, w: Window | None) -> None:
        inc = self.incident
        inc.source_count = len(self.sources)
        pps = w.metrics["pps"] if w is not None else 0.0
        bps = w.metrics["bps"] if w is not None else 0.0
        inc.top_sources = top_source_figures(
            self.t.sources.latest(), self.sources, pps, bps, self.t.cfg.agent.top_sources
        )

    def _judge_severity(self) -> None:
        inc = self.incident
        # Before any one-second rate (at the opening), the confirming window's rate stands
        # in: a wake-up's window is short and full of the flood, so the provisional
        # severity is mostly the one the first full window confirms (no update then).
        pps = inc.peak_pps or inc.peak_burst_pps
        bps = inc.peak_bps or inc.peak_burst_bps
        sev = self.t.reference.severity(pps, bps, inc.family == "multi_vector")
        if severity_rank(sev) > severity_rank(inc.severity):
            inc.severity = sev

    def _report_open(self, w: Window) -> None:
        inc = self.incident
        self._judge_severity()
        inc.severity_provisional = not inc.has_full_window
        self._refresh_sources(w)
        self.opened_reported = True
        log.warning(
            "incident opened: %s (%s) severity %s, %.0f pps, confirmed by %s",
            inc.family,
            inc.classification.subtype,
            inc.severity,
            inc.peak_pps,
            inc.confirm_reason,
            extra={
                "event": "incident_opened",
                "incident_uuid": inc.uuid,
                "family": inc.family,
                "subtype": inc.classification.subtype,
                "severity": inc.severity,
                "peak_pps": round(inc.peak_pps),
                "over": inc.classification.evidence.get("over_threshold", {}),
            },
        )
        report = inc.report(self._rule_figures())
        self.t.sink.incident_opened(report)
        self.t.journal.save(report, self.t.wall())
        self.last_update = time.monotonic()

    def _refine_severity(self, w: Window) -> None:
        """The first full window: the opening's provisional severity judged again, and an
        update when it changed (a refinement, not an escalation: no second notice)."""
        inc, t = self.incident, self.t
        self.severity_settled = True
        previous = inc.severity
        self._judge_severity()
        # settled: the next report says so (no update for that alone)
        inc.severity_provisional = False
        if inc.severity == previous:
            return
        log.info("incident %s severity refined: %s -> %s (peak %.0f pps)", inc.uuid, previous,
                 inc.severity, inc.peak_pps,
                 extra={"event": "incident_severity_refined", "incident_uuid": inc.uuid,
                        "severity": inc.severity, "previous": previous})
        self._refresh_sources(w)
        report = inc.report(self._rule_figures())
        t.sink.incident_updated(report, False)
        t.journal.save(report, t.wall())
        self.last_update = time.monotonic()

    def start(self, ring: list[Sample], pcap_dir: Path, w: Window) -> None:
        """Report the opening (first: nothing slow before it), then start the pcap."""
        self._report_open(w)
        self.severity_settled = self.incident.has_full_window
        cap = self.t.cfg.capture
        if cap.enabled:
            self.pcap = IncidentPcap.open(pcap_dir / f"{self.uuid}.pcap", cap, ring)

    # ---- samples ---------------------------------------------------------------------

    def take_samples(self, samples: list[Sample], parsed: list[PacketInfo]) -> None:
        if self.pcap is not None:
            self.pcap.write(samples)
        for p in parsed:
            if p.src is not None and len(self.sources) < INCIDENT_SOURCES_MAX:
                self.sources[p.src] += 1
        self.passed_since_change.extend(p for p in parsed if p.verdict == "passed")
        del self.passed_since_change[:-PASSED_KEPT]

    # ---- mitigation ------------------------------------------------------------------

    def _mitigate(self, cls: Classification, packets: list[PacketInfo], reason: str) -> None:
        inc, t = self.incident, self.t
        plan = plan_rules(
            cls, packets, t.cfg.mitigation, t.protection.protected, t.reference.rate_limit, t.guard
        )
        for r in plan.refused:
            log.warning(
                "refused a rule for %s: %s",
                r.target,
                r.reason,
                extra={
                    "event": "rule_refused",
                    "incident_uuid": inc.uuid,
                    "target": r.target,
                    "reason": r.reason,
                },
            )
        if t.mitigator.mode == "off":
            inc.record(
                t.wall(),
                "none",
                "mitigation off; would have added: " + ", ".join(s.describe() for s in plan.rules),
            )
            return
        with t.lock:
            changes = t.mitigator.apply(plan.rules, inc.uuid, reason)
        inc.rules = t.mitigator.rules_of(inc.uuid)
        action = "dry_run" if t.mitigator.mode == "dry_run" else "rules_added"
        inc.record(t.wall(), action, "; ".join(plan.notes) or reason, [c.rule for c in changes])
        if plan.refused:
            inc.record(t.wall(), "refused", "protected targets", [r.target for r in plan.refused])
        t.sink.rules_changed(changes)
        self.windows_since_change = 0
        self.leaks = {}
        self.passed_since_change = []
        self._mark_spared()

    def _verify(self, w: Window) -> None:
        """Does the attack still get through? Widen if it does, for verify_windows windows."""
        # Judge each vector on its mean leak over its last `verify_windows` windows that
        # carried attack traffic: floods come in pulses, and one quiet or fully dropped
        # window must neither hide nor prove a leak.
        inc, t = self.incident, self.t
        n = t.cfg.mitigation.verify_windows
        leaking = []
        benign: dict[str, float] | None = None
        for v in inc.classification.vectors:
            metric = vector_metric(v)
            threshold = t.reference.threshold(metric)
            rate = w.metrics.get(metric, 0.0)
            if rate <= threshold:
                continue
            if benign is None:
                benign = self._benign_spared_pps()
            leaks = self.leaks.setdefault(v.family, deque(maxlen=n))
            leaks.append(rate - w.dropped_pps - benign.get(v.family, 0.0))
            mean_leak = sum(leaks) / len(leaks)
            if len(leaks) >= n and mean_leak > threshold:
                leaking.append((v, mean_leak))
        if not leaking:
            return
        self.leaks = {}
        self.windows_since_change = 0
        current = t.mitigator.rules_of(inc.uuid)
        for v, leak in leaking:
            plan = plan_widening(
                v,
                self.passed_since_change,
                current,
                t.cfg.mitigation,
                t.protection.protected,
                t.reference.rate_limit,
                t.guard,
            )
            if not plan.rules:
                if v.family not in self.widen_failed:  # once per vector, not every check
                    self.widen_failed.add(v.family)
                    inc.record(
                        t.wall(),
                        "widen_failed",
                        f"{v.family} leaks {leak:.0f} pps; " + "; ".join(plan.notes),
                    )
                continue
            with t.lock:
                changes = t.mitigator.apply(
                    plan.rules, inc.uuid, f"widen: {v.family} leaks", label="widened"
                )
            rules = [c.rule for c in changes]
            inc.record(
                t.wall(),
                "widened",
                f"{v.family} leaked {leak:.0f} pps; " + "; ".join(plan.notes),
                rules,
            )
            log.warning(
                "incident %s: mitigation widened (%s)",
                inc.uuid,
                "; ".join(plan.notes),
                extra={"event": "mitigation_widened", "incident_uuid": inc.uuid, "rules": rules},
            )
            t.sink.rules_changed(changes)
        inc.rules = t.mitigator.rules_of(inc.uuid)
        self.passed_since_change = []
        self._mark_spared()

    # ---- each window -----------------------------------------------------------------

    def window(self, w: Window, recent: list[Window], packets: list[PacketInfo]) -> None:
        """One window of the attack. `recent`: the loop's latest windows (newest last);
        `packets`: the last second of sampled packets."""
        inc, t = self.incident, self.t
        inc.observe(w)
        self.spared_seconds += w.duration_s
        if not self.severity_settled:
            if inc.has_full_window:
                self._refine_severity(w)
            return
        self.windows_since_change += 1
        if (
            t.mitigator.mode == "on"
            and self.windows_since_change >= t.cfg.mitigation.verify_windows
        ):
            self._verify(w)
        now = time.monotonic()
        if now - self.last_update < UPDATE_INTERVAL_S:
            return
        self.last_update = now
        escalated = self._reclassify(w, recent, packets)
        previous = inc.severity
        self._judge_severity()
        if inc.severity != previous:
            escalated = True
            log.warning(
                "incident %s escalated: %s -> %s (peak %.0f pps)",
                inc.uuid,
                previous,
                inc.severity,
                inc.peak_pps,
                extra={
                    "event": "incident_escalated",
                    "incident_uuid": inc.uuid,
                    "severity": inc.severity,
                    "previous": previous,
                },
            )
        self._refresh_sources(w)
        report = inc.report(self._rule_figures())
        t.sink.incident_updated(report, escalated)
        t.journal.save(report, t.wall())

    def _reclassify(self, w: Window, recent: list[Window], packets: list[PacketInfo]) -> bool:
        """Re-read the attack over the last second: a new vector turns it multi_vector."""
        inc, t = self.incident, self.t
        last = [x for x in recent if x.end_ns >= w.end_ns - 1_000_000_000] or [w]
        merged = merge_windows(last)
        cls = classify(
            merged, t.reference.base_avgs(), summarize(packets), t.cfg.mitigation.max_source_rules
        )
        old_families = {v.family for v in inc.classification.vectors}
        # A new vector counts only while it is itself above its threshold (not the noise
        # left in the cool-down once the flood has stopped).
        new_vectors = [
            v
            for v in cls.vectors
            if v.family not in old_families
            and v.family != "unknown"
            and merged.metrics.get(vector_metric(v), 0.0) > t.reference.threshold(vector_metric(v))
        ]
        if not new_vectors:
            return False
        vectors = (*inc.classification.vectors, *new_vectors)
        fams = list(dict.fromkeys(v.family for v in vectors if v.family != "unknown"))
        family = "multi_vector" if len(fams) > 1 else fams[0]
        evidence = {**inc.classification.evidence, "later_vectors": [v.family for v in new_vectors]}
        subtype = "+".join(fams) if len(fams) > 1 else inc.classification.subtype
        inc.classification = Classification(family, subtype, vectors, evidence)
        log.warning(
            "incident %s gained vector(s) %s",
            inc.uuid,
            ", ".join(v.family for v in new_vectors),
            extra={"event": "incident_escalated", "incident_uuid": inc.uuid, "family": family},
        )
        self._mitigate(Classification(family, "", tuple(new_vectors), {}), packets, "new vector")
        return True

    # ---- the end ---------------------------------------------------------------------

    def resolve(self, reason: ResolveReason, last: Window | None) -> None:
        inc, t = self.incident, self.t
        inc.ended_at = t.wall()
        if not self.opened_reported and last is not None:
            self._report_open(last)  # resolved within its first window: say it opened
        self._refresh_sources(last)
        t.sources.set_active(False)
        t.mitigator.release(inc.uuid)
        if inc.rules:
            inc.record(
                t.wall(),
                "released",
                f"rules removed after hold-down {t.cfg.mitigation.holddown_s}s",
            )
        self.close_pcap()
        duration = inc.ended_at - inc.started_at
        log.warning(
            "incident resolved: %s after %.1f s, peak %.0f pps, severity %s (%s)",
            inc.family,
            duration,
            inc.peak_pps,
            inc.severity,
            reason,
            extra={
                "event": "incident_resolved",
                "incident_uuid": inc.uuid,
                "family": inc.family,
                "severity": inc.severity,
                "peak_pps": round(inc.peak_pps),
                "duration_s": round(duration, 3),
                "reason": reason,
            },
        )
        t.sink.incident_resolved(inc.report(self._rule_figures(), reason))
        t.journal.clear()

    def close_pcap(self) -> None:
        pcap, self.pcap = self.pcap, None
        if pcap is not None and pcap.close(self.uuid):
            self.t.sink.pcap_ready(self.uuid, pcap.path)

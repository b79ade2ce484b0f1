"""An incident's response against the real kernel rule maps: when it reports its opening
(never on the partly filled first window), what its rules report (the TTL in force), and
how it ends (a reason; the journal of the active incident cleared)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ftagent.config import Config, decode
from ftagent.detect.baseline import Baseline
from ftagent.detect.detector import Detector, Transition
from ftagent.detect.rates import Window
from ftagent.detect.reference import Reference
from ftagent.evidence.sampling import Sampler
from ftagent.evidence.sources import SourceWatcher
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.protection import Protection
from ftagent.orders.overrides import OverrideApplier
from ftagent.respond.journal import IncidentJournal
from ftagent.respond.response import IncidentResponse, Tools
from ftagent.respond.shield import ShieldedSink
from ftcontract import agent_api
from ftcontract.vocabulary import severity_rank
from lab.agent_harness import RecordingSink
from tests.unit.agent.synth import window

pytestmark = [pytest.mark.kernel]

# Floors make the reference 20 kpps: 300 kpps is "high" (ratio 15), the partly filled
# first window at 60 kpps would read "medium" (ratio 3).
CONFIG = """
[agent]
state_dir = "{state}"
[detection]
floors = {{ pps = 20000, bps = 1e12, udp_pps = 20000 }}
[mitigation]
rule_ttl_s = 300
"""


def at(w: Window, i: int) -> Window:
    return dataclasses.replace(w, end_ns=(i + 1) * 100_000_000)


class Setup:
    def __init__(self, maps: Any, tmp: Path) -> None:
        self.cfg: Config = decode(CONFIG.format(state=tmp))
        self.sink = RecordingSink()
        self.lock = threading.RLock()
        baseline = Baseline(self.cfg.baseline)
        self.reference = Reference(self.cfg, baseline, time.time)
        self.protection = Protection([], [], [], [])
        self.mitigator = Mitigator(maps, self.cfg.mitigation, self.protection.protected)
        self.journal = IncidentJournal(tmp / "incident.json")
        self.tools = Tools(
            self.cfg, maps, self.lock, self.mitigator, self.protection, self.reference,
            SourceWatcher(maps, 20, 60.0), ShieldedSink(self.sink), self.journal, time.time,
        )  # fmt: skip
        self.overrides = OverrideApplier(
            self.cfg, self.reference, Detector(), self.mitigator, self.protection,
            Sampler(maps, self.cfg.capture, self.lock), maps, self.lock,
        )  # fmt: skip

    def open_by_burst(self, first: Window, tmp: Path) -> IncidentResponse:
        tr = Transition("confirmed", "burst", {"pps": first.metrics["pps"] / 20000})
        r = IncidentResponse(self.tools, tr, [first], [])
        r.start([], tmp / "pcap", first)
        return r


def test_opening_goes_out_at_once_and_a_full_window_refines_its_severity(
    clean_maps: Any, tmp_path: Path
) -> None:
    s = Setup(clean_maps, tmp_path)
    flood = window(udp=300_000)
    r = s.open_by_burst(at(window(udp=60_000), 0), tmp_path)
    # reported at confirmation, on the partly filled first window: severity provisional
    (opened,) = [e.data for e in s.sink.of("opened")]
    assert opened.figures.seq == 1
    provisional = opened.figures.severity
    assert severity_rank(provisional) <= severity_rank("high")
    assert opened.figures.severity_provisional  # the control plane will not escalate on it
    r.window(at(flood, 1), [], [])
    refined = [e.data for e in s.sink.of("updated")]
    if provisional == "high":
        assert refined == []  # nothing to refine: no update
    else:  # the first full window refines it: an update, not an escalation
        (update,) = refined
        assert update.report.figures.severity == "high" and not update.escalated
        assert update.report.figures.seq == 2
    for i in range(2, 14):
        r.window(at(flood, i), [], [])
    time.sleep(1.05)  # updates go out at most once a second
    r.window(at(flood, 14), [], [])
    updates = [e.data for e in s.sink.of("updated")]
    assert updates and all(not u.escalated for u in updates)
    assert all(u.report.figures.severity == "high" for u in updates)
    assert not any(u.report.figures.severity_provisional for u in updates)  # settled
    r.resolve("cooled_down", at(flood, 15))


def test_rules_report_the_ttl_in_force_after_an_override(clean_maps: Any, tmp_path: Path) -> None:
    """Bug: figures showed the configured rule_ttl_s, ignoring the control plane's."""
    s = Setup(clean_maps, tmp_path)
    s.overrides.apply(agent_api.Overrides(rule_ttl_s=77.0), 0.0)
    flood = window(udp=300_000)
    r = s.open_by_burst(at(flood, 0), tmp_path)
    r.window(at(flood, 1), [], [])
    (opened,) = [e.data for e in s.sink.of("opened")]
    assert [(f.kind, f.proto, f.ttl_sec) for f in opened.figures.rules] == [("rate_limit", 17, 77)]
    (installed,) = clean_maps.list_rules()  # the same rule, in the kernel
    assert installed.spec.proto == 17 and installed.spec.rate_pps is not None
    r.resolve("cooled_down", at(flood, 2))


def test_a_resolve_carries_its_reason_and_clears_the_journal(
    clean_maps: Any, tmp_path: Path
) -> None:
    s = Setup(clean_maps, tmp_path)
    flood = window(udp=300_000)
    r = s.open_by_burst(at(flood, 0), tmp_path)
    r.window(at(flood, 1), [], [])
    kept = s.journal.load()
    assert kept is not None and kept.report.uuid == r.uuid
    r.resolve("agent_stopped", at(flood, 2))
    (resolved,) = [e.data for e in s.sink.of("resolved")]
    assert (resolved.uuid, resolved.reason) == (r.uuid, "agent_stopped")
    assert resolved.ended_at is not None and resolved.figures.seq == 2
    assert s.journal.load() is None


def test_an_incident_resolved_within_its_first_window_still_reports_its_opening(
    clean_maps: Any, tmp_path: Path
) -> None:
    s = Setup(clean_maps, tmp_path)
    r = s.open_by_burst(at(window(udp=300_000), 0), tmp_path)
    r.resolve("agent_stopped", at(window(udp=0.0), 1))
    kinds = [e.kind for e in s.sink.events if e.kind in ("opened", "updated", "resolved")]
    assert kinds == ["opened", "resolved"]

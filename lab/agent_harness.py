"""Run the real agent loop in-process inside a lab's victim namespace (tests and bench).

The loop runs in its own thread, which enters the victim namespace, attaches the XDP
program to the victim veth and polls it; floods come from the attacker namespace.
`RecordingSink` is a real EventSink that keeps what the loop reported.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftagent.agent import Agent
from ftagent.config import Config, decode
from ftagent.detect.rates import Window
from ftagent.events import AgentStatus, IncidentReport, RuleChange
from ftcontract import agent_api
from lab.collateral import CollateralLab
from lab.netns import Lab


@dataclass
class Event:
    kind: str
    at_ns: int  # time.monotonic_ns() when the loop reported it
    data: Any  # what the loop handed over (IncidentReport, RuleChange, MetricPoint ...)


@dataclass(frozen=True)
class PcapReady:
    uuid: str
    path: Path


@dataclass(frozen=True)
class Updated:
    report: IncidentReport
    escalated: bool


@dataclass
class RecordingSink:
    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set by a test: handed to the loop once, as the control plane's reporter would.
    pending_overrides: agent_api.Overrides | None = None
    acks: list[agent_api.CommandAck] = field(default_factory=list)
    status: AgentStatus | None = None

    def _add(self, kind: str, data: Any) -> None:
        with self.lock:
            self.events.append(Event(kind, time.monotonic_ns(), data))

    def start(self, status: AgentStatus) -> None:
        self.status = status

    def incident_opened(self, report: IncidentReport) -> None:
        self._add("opened", report)

    def incident_updated(self, report: IncidentReport, escalated: bool) -> None:
        self._add("updated", Updated(report, escalated))

    def incident_resolved(self, report: IncidentReport) -> None:
        self._add("resolved", report)

    def metrics_second(self, point: agent_api.MetricPoint, status: AgentStatus) -> None:
        self.status = status
        self._add("metrics", point)

    def rule_changed(self, change: RuleChange) -> None:
        self._add("rule", change)

    def pcap_ready(self, incident_uuid: str, path: Path) -> None:
        self._add("pcap", PcapReady(incident_uuid, path))

    def poll_control(self) -> agent_api.AgentConfig | None:
        with self.lock:
            o, self.pending_overrides = self.pending_overrides, None
        if o is None:
            return None
        return agent_api.AgentConfig(
            config_version=1,
            thresholds=o.thresholds,
            mitigation_mode=o.mitigation_mode,
            rule_ttl_s=o.rule_ttl_s,
            allowlist=o.allowlist,
            sampling=o.sampling,
        )

    def push_overrides(self, o: agent_api.Overrides) -> None:
        with self.lock:
            self.pending_overrides = o

    def commands_done(self, acks: list[agent_api.CommandAck]) -> None:
        with self.lock:
            self.acks.extend(acks)

    def close(self) -> None:
        return None

    def of(self, kind: str, since_ns: int = 0) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.kind == kind and e.at_ns >= since_ns]


def lab_config(
    interface: str,
    state_dir: Path,
    extra: str = "",
    *,
    mode: str = "on",
    rate_limit_min_pps: int | None = 100,
) -> Config:
    """Short intervals so a test sees baseline, attack, resolution and expiry in seconds.
    `rate_limit_min_pps` None keeps the default floor (what an operator runs)."""
    floor = "" if rate_limit_min_pps is None else f"rate_limit_min_pps = {rate_limit_min_pps}"
    text = f"""
[agent]
interface = "{interface}"
state_dir = "{state_dir}"
poll_interval_ms = 100
log_format = "json"
[baseline]
window_s = 60
min_samples = 2
recompute_interval_s = 1
[detection]
cooldown_s = 1.0
[mitigation]
mode = "{mode}"
rule_ttl_s = 3.0
holddown_s = 1.0
{floor}
verify_windows = 3
[capture]
pre_attack_s = 2.0
[http]
enabled = false
{extra}
"""
    return decode(text)


@dataclass
class WindowRecord:
    end_ns: int
    duration_s: float
    pps: float
    dropped_pps: float
    attack: bool
    trigger: str = "tick"  # "wake": the kernel's wake-up started the window


class RunningAgent:
    def __init__(self, lab: Lab | CollateralLab, cfg: Config) -> None:
        self.lab = lab
        self.cfg = cfg
        self.sink = RecordingSink()
        self.windows: deque[WindowRecord] = deque(maxlen=20000)
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.agent: Agent | None = None
        self.dp: Any = None
        self.thread = threading.Thread(target=self._main, name="agent-under-test", daemon=True)
        self.after_window: Callable[[Window, Agent], None] | None = None

    def _on_window(self, w: Window, agent: Agent) -> None:
        self.windows.append(
            WindowRecord(
                w.end_ns, w.duration_s, w.metrics["pps"], w.dropped_pps,
                agent.response is not None, agent.trigger,
            )
        )
        if self.after_window is not None:
            self.after_window(w, agent)

    def _main(self) -> None:
        from ftagent.bpf.loader import LoadOptions, XdpDatapath
        from ftagent.mitigate.netinfo import own_networks
        from lab.bpf_testrun import TEST_PIN_ROOT

        try:
            with self.lab.inside(self.lab.victim_ns):
                self.dp = XdpDatapath.open(
                    self.lab.victim_if,
                    LoadOptions(mode=self.cfg.agent.xdp_mode, pin_root=TEST_PIN_ROOT),
                )
                try:
                    self.agent = Agent(
                        self.cfg,
                        self.dp,
                        self.sink,
                        own_networks=own_networks(),
                        on_window=self._on_window,
                    )
                    self.ready.set()
                    self.agent.run(self.stop_event)
                finally:
                    self.dp.close()
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def start(self, timeout_s: float = 120.0) -> RunningAgent:
        self.thread.start()
        if not self.ready.wait(timeout_s) or self.error is not None:
            raise RuntimeError(f"agent did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)

    def wait_for(self, pred: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"agent loop died: {self.error!r}")
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")

    def quiet(self) -> bool:
        a = self.agent
        return a is not None and a.response is None and not a.mitigator.rules

    def wait_baseline(self, timeout_s: float = 30.0) -> None:
        self.wait_for(
            lambda: self.agent is not None and self.agent.baseline.ready,
            timeout_s,
            "a ready baseline",
        )

"""Collateral benchmark (root): what the node's real users keep while a flood is
mitigated, with the real agent's mitigation off (observe only) and on.

The collateral lab (lab.collateral: attacker, client and victim namespaces joined by a
bridge, no default route) with real services on the victim (lab.services) and legitimate
traffic from the client (lab.legit): new TCP connections (HTTP, 20/s, 1 s timeout), one
long download started before the flood (bytes/s during the flood over the seconds just
before it), the UDP service from a client that talked to it before the flood (50/s), the
victim's own DNS lookups to the resolver in the client namespace (10/s) and ICMP echo
(10/s). The agent loop runs in this process on the victim's one interface
(lab.agent_harness.RunningAgent: the real Agent, XdpDatapath and mitigator), once
with `[mitigation] mode = "off"`, once with "on", for each IP version.

Each attack (lab.collateral_flood, the runner the collateral e2e test uses too): a flood
paced evenly by a tbf qdisc (lab.trafgen, bounded in packets and killed after its
seconds at the latest) while the legitimate traffic is measured; the
rate the victim's interface saw is printed. "dropped" is the share of the attack's
packets that did not reach the victim's stack, from the first full 100 ms window after
the agent's first rule was in (for a run without a rule: over the whole flood): the
attacker's packets entering the bridge (its bridge port's rx counter) against those
that passed XDP (lab.passcount, a tc ingress counter of the attacker's MAC). For
udp_service_flood (random sources at the UDP service's own port) clients first seen
during the flood (each request from a client address never used before) are measured
too and reported separately.

Each cell runs REPEAT times (IPv4; REPEAT_V6 for IPv6), every attack once per round, and
shows the median with the range. Beside the classes, each cell says what could explain a
loss: the download from the first rule on, the client's frames that never reached the
victim's stack (a pass counter of its MAC behind XDP against its interface's tx), drops
on any lab interface, bridge port or input backlog, and the victim's TCP
retransmissions.

The SYN-flood CPU table (SYN_CPU_CASES): syn_flood at :80 with a listener there
(mitigation off and on: the kernel's SYN cookies answer), at :80 with nothing listening
(mitigation on: the rule drops it in XDP) and no flood; for each, the CPU the victim's
kernel spent receiving (lab.napitime), the machine's softirq and sys time, the
victim's SYN cookies, its frames sent and answers with no route, and the clients'
new connections. IPv6 answers are routed to the attacker (they leave the victim, as on
the Internet); IPv4's random sources have no route back (no default route in the lab).

    python -m bench collateral              # everything (about 10 minutes)
    python -m bench.bench_collateral --quick
    python -m bench.bench_collateral --attack syn_flood --attack udp_flood --ip 4
    python -m bench.bench_collateral --seconds 4 --pps 45000 --repeat 3
    python -m bench.bench_collateral --syn-cpu-only

A benchmark: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from lab.agent_harness import RunningAgent
    from lab.collateral import CollateralLab, PathCounters
    from lab.legit import ClassResult, LegitResult, LegitTraffic
    from lab.napitime import NapiTime, NapiTotals
    from lab.passcount import PassCounter
    from lab.rxrate import AchievedRate
    from lab.services import LabServices

FLOOD_PPS = 45_000  # what this 2-core lab sustains evenly (the achieved rate is printed)
FLOOD_S = 4.0
QUICK_FLOOD_S = 2.0
BEFORE_S = 1.5  # the download's rate before a flood: over these seconds just before it
QUIET_S = 3.0  # the no-flood measurement of each agent run
SETTLE_TIMEOUT_S = 30.0  # for the incident to resolve and its rules to go between attacks
DL_BIN_S = 0.25  # the download's timeline, bins of this length
ATTACKS = (
    "udp_flood",
    "syn_flood",
    "ack_flood",
    "rst_flood",
    "icmp_flood",
    "fragment_flood",
    "dns_amplification",
    "ntp_amplification",
    "memcached_amplification",
    "ssdp_amplification",
    "cldap_amplification",
    "chargen_amplification",
    "udp_service_flood",
)
QUICK_ATTACKS = ("udp_flood", "syn_flood", "ack_flood", "dns_amplification", "udp_service_flood")
NEW_CLIENT_ATTACK = "udp_service_flood"
# runs of each cell by default (the table shows the median and the range): IPv4 twice,
# IPv6 once, so the whole bench stays near 10 minutes on the shared 2-core machine (3 and
# 1 took 14 minutes there); the SYN-flood CPU cases follow the same counts
REPEAT, REPEAT_V6 = 2, 1
SYN_PORT = 80  # where syn_flood aims (lab.trafgen); closed for the closed-port cases
SYN_CPU_SKIP_S = 1.0  # the CPU is measured from this long after the flood's start (rule in)
# (label, agent mode, flood sent, :80 listening)
SYN_CPU_CASES = (
    ("open port, mitigation off", "off", True, True),
    ("no flood", "on", False, True),
    ("open port, mitigation on", "on", True, True),
    ("closed port, mitigation on", "on", True, False),
)
MODES = ("off", "on")
CLASSES = ("tcp_connect", "download", "udp_request", "dns_lookup", "ping")
CLASS_HEADS = ("tcp", "dl", "udp", "dns", "ping")


@dataclass(frozen=True, slots=True)
class Settings:
    attacks: tuple[str, ...]
    ip_versions: tuple[int, ...]
    flood_s: float = FLOOD_S
    pps: int = FLOOD_PPS
    modes: tuple[str, ...] = MODES
    quiet_s: float = QUIET_S
    before_s: float = BEFORE_S
    repeat: int = 1  # runs of each IPv4 cell (attack, mode)
    repeat_v6: int = 1  # runs of each IPv6 cell
    # the SYN-flood CPU cases to run (of SYN_CPU_CASES), per mode and IP version
    syn_cpu: tuple[tuple[str, str, bool, bool], ...] = ()

    def repeats(self, ip_version: int) -> int:
        return self.repeat if ip_version == 4 else self.repeat_v6


@dataclass(frozen=True, slots=True)
class Outcome:
    """One flood against one agent run."""

    attack: str
    ip_version: int
    mode: str
    legit: LegitResult
    download_before_bytes_s: float
    achieved: AchievedRate | None  # the victim interface's rx (legitimate traffic too)
    attack_pps: float  # the attacker's frames into the bridge, mean over the flood
    family: str  # the incident's family as the agent opened it ("-": no incident)
    detect_ms: float | None  # flood's first packets -> incident opened
    rule_ms: float | None  # flood's first packets -> first rule in
    rules: tuple[str, ...]  # RuleSpec.describe() of every rule added or widened
    # per rule in the kernel at the flood's end: (describe(), dropped, spared) packets
    rule_counts: tuple[tuple[str, int, int], ...]
    dropped: float | None  # share of the attack's packets kept from the stack, 0..1
    # the download's bytes/s from the first rule to the flood's end (None: no rule)
    download_from_rule_bytes_s: float | None = None
    # the download's bytes/s in DL_BIN_S bins from before_s before the flood to its end
    download_bins: tuple[float, ...] = ()
    path: PathCounters | None = None  # the loss counters over the flood (after - before)
    # the client's frames that it sent and that did not reach the victim's stack (lost on
    # the way or dropped by XDP): its interface's tx count against the pass counter
    client_lost: int | None = None
    repeat: int = 0  # which repetition of this cell (0-based)

    def success(self, name: str) -> float:
        """Share (0..1) of a class that succeeded; the download: bytes/s during over
        bytes/s before."""
        if name == "download":
            before = self.download_before_bytes_s
            return self.legit.download_bytes_s / before if before > 0 else 0.0
        return self.legit.classes()[name].success_rate

    def download_from_rule(self) -> float | None:
        """The download from the first rule on, over the same before (None: no rule)."""
        before = self.download_before_bytes_s
        if self.download_from_rule_bytes_s is None or before <= 0:
            return None
        return self.download_from_rule_bytes_s / before


@dataclass
class RuleCounts:
    """The kernel's per-rule counters, read on the agent loop's own thread (between two
    of its windows) when asked: the bench never touches the data path concurrently."""

    _wanted: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _got: tuple[tuple[str, int, int], ...] = ()

    def hook(self, ra: RunningAgent) -> None:
        def after_window(w: Any, agent: Any) -> None:
            if self._wanted.is_set():
                self._got = tuple(
                    (r.spec.describe(), r.dropped_packets, r.spared_packets)
                    for r in ra.dp.list_rules()
                )
                self._wanted.clear()
                self._done.set()

        ra.after_window = after_window

    def read(self, timeout_s: float = 2.0) -> tuple[tuple[str, int, int], ...]:
        """The counters after the agent's next window (() when it did not come in time)."""
        self._got = ()
        self._done.clear()
        self._wanted.set()
        self._done.wait(timeout_s)
        return self._got


@dataclass(slots=True)
class AgentRun:
    agent: RunningAgent
    rule_counts: RuleCounts
    last_flood_end: float = 0.0  # monotonic end of this run's last flood


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The machine's CPU time (/proc/stat's "cpu" line) in seconds, at one moment."""

    softirq_s: float
    system_s: float
    at: float  # time.monotonic()

    @classmethod
    def read(cls) -> CpuTimes:
        with open("/proc/stat") as fh:
            cols = fh.readline().split()
        tick = os.sysconf("SC_CLK_TCK")
        # cpu user nice system idle iowait irq softirq ...
        return cls(int(cols[7]) / tick, int(cols[3]) / tick, time.monotonic())


@dataclass(frozen=True, slots=True)
class SynCpu:
    """One SYN-flood CPU case: the machine's softirq and system time over the flood (in
    cores: CPU seconds per second), what the victim's kernel answered, and the clients."""

    label: str
    mode: str
    ip_version: int
    flood: bool
    port_open: bool
    softirq_cores: float
    system_cores: float
    victim_rx: NapiTotals  # the victim interface's NAPI polls over the window (lab.napitime)
    syncookies_sent: int  # the victim's TcpExt.SyncookiesSent over the window
    victim_tx: int  # frames the victim's interface sent over the window (SYN-ACKs ...)
    no_route: int  # the victim's Ip.OutNoRoutes over the window (answers with no route)
    window_s: float
    connected: ClassResult | None  # new connections to :80 (None: :80 closed)
    attack_pps: float
    rules: tuple[tuple[str, int, int], ...]


@contextlib.contextmanager
def running_agent(lab: CollateralLab, tmp: Path, mode: str) -> Iterator[AgentRun]:
    from lab.agent_harness import RunningAgent, lab_config
    from lab.netns import Lab

    # the lab's short intervals, the default rate-limit floor (what an operator runs)
    cfg = lab_config(lab.victim_if, tmp / f"agent-{mode}", mode=mode, rate_limit_min_pps=None)
    # The harness needs a lab's inside(), victim_ns and victim_if, which CollateralLab has
    # under the same names as the two-namespace Lab it is typed with.
    ra = RunningAgent(cast(Lab, lab), cfg)
    counts = RuleCounts()
    counts.hook(ra)
    ra.start()
    try:
        ra.wait_baseline(60.0)
        yield AgentRun(ra, counts)
    finally:
        ra.stop()


def one_flood(lab: CollateralLab, agent_run: AgentRun, legit: LegitTraffic, passed: PassCounter,
              attack: str, ip_version: int, mode: str, settings: Settings,
              repeat: int = 0) -> Outcome:  # fmt: skip
    from lab.collateral_flood import flood_against_agent
    from lab.legit import NEW_CLIENT_PER_S

    ra = agent_run.agent
    ra.wait_for(ra.quiet, SETTLE_TIMEOUT_S, "no incident and no rule before the next flood")
    # the download's "before": the before_s just before this flood, none of the last one's
    # in it (the wait for a quiet agent usually took that long already)
    time.sleep(max(0.0, agent_run.last_flood_end + settings.before_s - time.monotonic()))
    fresh: list[str] = []
    if attack == NEW_CLIENT_ATTACK and repeat == 0:
        # one request a second from each of NEW_CLIENT_PER_S fresh clients; at most 60 a
        # flood (the lab has 155 fresh IPv4 addresses in all: the first run of each mode
        # and IP version measures them, repetitions do not)
        count = min(60, int(settings.flood_s * NEW_CLIENT_PER_S))
        fresh = lab.add_client_addresses(count, ip_version)
    counts: list[tuple[tuple[str, int, int], ...]] = []
    try:
        got = flood_against_agent(
            lab, ra, legit, passed, attack, packets=int(settings.pps * settings.flood_s),
            pps=settings.pps, measure_s=settings.flood_s, ip_version=ip_version,
            fresh_sources=fresh,
            while_flooding=lambda: counts.append(agent_run.rule_counts.read()),  # rules still in
        )  # fmt: skip
    finally:
        agent_run.last_flood_end = time.monotonic()
    t0 = got.t0
    before, _ = legit.download_over(t0 - settings.before_s, t0)
    first_rule = got.first_rule
    span = got.attack()
    start = span.start or t0
    end = t0 + settings.flood_s
    from_rule = (legit.download_over(first_rule, end)[0]
                 if first_rule is not None and first_rule < end - DL_BIN_S else None)  # fmt: skip
    bins = tuple(
        legit.download_over(a, a + DL_BIN_S)[0]
        for a in (t0 - settings.before_s + i * DL_BIN_S
                  for i in range(int((settings.before_s + settings.flood_s) / DL_BIN_S)))
    )  # fmt: skip
    opened = got.opened
    return Outcome(
        attack=attack,
        ip_version=ip_version,
        mode=mode,
        legit=got.legit,
        download_before_bytes_s=before,
        achieved=got.achieved,
        attack_pps=span.mean_pps,
        family=str(opened[0].data.figures.family) if opened else "-",
        detect_ms=(opened[0].at_ns / 1e9 - start) * 1e3 if opened else None,
        rule_ms=(first_rule - start) * 1e3 if first_rule is not None else None,
        rules=tuple(dict.fromkeys(e.data.rule for e in got.rules)),
        rule_counts=counts[0] if counts else (),
        dropped=span.dropped,
        download_from_rule_bytes_s=from_rule,
        download_bins=bins,
        path=got.path,
        client_lost=got.client_lost,
        repeat=repeat,
    )


def syn_cpu_case(lab: CollateralLab, agent_run: AgentRun, legit: LegitTraffic,
                 services: LabServices, passed: PassCounter, napi: NapiTime,
                 case: tuple[str, str, bool, bool], ip_version: int,
                 settings: Settings) -> SynCpu:  # fmt: skip
    """One SYN_CPU_CASES case: the CPU counters from SYN_CPU_SKIP_S after the flood's
    start (the rule is in by then) to its end, the clients over the whole flood."""
    from lab.collateral_flood import AttackMeter, attack_windows
    from lab.trafgen import start_flood, stop_flood

    label, mode, flood_sent, port_open = case
    ra = agent_run.agent
    ra.wait_for(ra.quiet, SETTLE_TIMEOUT_S, "no incident and no rule before the next flood")
    if not port_open:
        services.close_http(SYN_PORT)
    try:
        t0 = time.monotonic()
        meter = AttackMeter(lab, passed).start()
        flood = None
        if flood_sent:
            packets = int(settings.pps * settings.flood_s)
            flood = start_flood(lab, "syn_flood", packets=packets, pps=settings.pps,
                                ip_version=ip_version)  # fmt: skip
        reads: list[tuple[CpuTimes, NapiTotals, PathCounters]] = []

        def read_at(at: float) -> None:
            time.sleep(max(0.0, at - time.monotonic()))
            reads.append((CpuTimes.read(), napi.read(), lab.path_counters()))

        skip = min(SYN_CPU_SKIP_S, settings.flood_s / 2)
        window = [threading.Thread(target=read_at, args=(t0 + d,), daemon=True)
                  for d in (skip, settings.flood_s)]  # fmt: skip
        for t in window:
            t.start()
        try:
            result = legit.measure(settings.flood_s)
            counts = agent_run.rule_counts.read() if mode == "on" else ()
            for t in window:
                t.join(settings.flood_s + 5.0)
        finally:
            if flood is not None:
                stop_flood(flood)
                agent_run.last_flood_end = time.monotonic()
            meter.stop()
    finally:
        services.open_http(SYN_PORT)
    (c0, n0, p0), (c1, n1, p1) = sorted(reads, key=lambda r: r[0].at)
    seconds = c1.at - c0.at
    path = p1 - p0
    span = attack_windows(meter.samples, None)
    return SynCpu(
        label=label,
        mode=mode,
        ip_version=ip_version,
        flood=flood_sent,
        port_open=port_open,
        softirq_cores=(c1.softirq_s - c0.softirq_s) / seconds,
        system_cores=(c1.system_s - c0.system_s) / seconds,
        victim_rx=n1 - n0,
        syncookies_sent=path.victim_stack["TcpExt.SyncookiesSent"],
        victim_tx=path.hosts["victim"].tx_packets,
        no_route=path.victim_stack["Ip.OutNoRoutes"],
        window_s=seconds,
        connected=result.tcp_connect if port_open else None,
        attack_pps=span.mean_pps if flood_sent else 0.0,
        rules=counts,
    )


def run(settings: Settings, tmp: Path,
        progress: bool = True) -> tuple[list[Outcome], list[Outcome], list[SynCpu]]:  # fmt: skip
    """(no-flood rows, flood rows, SYN-flood CPU cases) for every mode, IP version and
    attack asked for (the CPU cases only with settings.syn_cpu)."""
    from lab.collateral import CollateralLab
    from lab.legit import LegitTraffic
    from lab.napitime import NapiTime
    from lab.passcount import PassCounter
    from lab.services import LabServices
    from lab.trafgen import IPV6_PROFILES

    quiet: list[Outcome] = []
    rows: list[Outcome] = []
    syn: list[SynCpu] = []
    with (
        CollateralLab.create() as lab,
        LabServices.start(lab) as services,
        PassCounter.attach(
            lab.victim_ns, lab.victim_if, lab.attacker_mac, lab.client.mac
        ) as passed,
        # only for the SYN-flood CPU cases: its compile is a few seconds
        NapiTime.attach(lab.victim_if) if settings.syn_cpu else contextlib.nullcontext() as napi,
    ):
        for mode in settings.modes:  # one agent run per mode: the XDP build is the slow part
            with running_agent(lab, tmp, mode) as agent_run:
                for ip_version in settings.ip_versions:
                    attacks = [a for a in settings.attacks
                               if ip_version == 4 or a in IPV6_PROFILES]  # fmt: skip
                    with LegitTraffic.start(lab, ip_version=ip_version) as legit:
                        agent = agent_run.agent
                        agent.wait_for(agent.quiet, SETTLE_TIMEOUT_S, "a quiet agent")
                        t0 = time.monotonic()
                        base = legit.measure(settings.quiet_s)
                        dl, _ = legit.download_over(t0, t0 + settings.quiet_s)
                        quiet.append(Outcome("(no flood)", ip_version, mode, base, dl, None,
                                             0.0, "-", None, None, (), (), None))  # fmt: skip
                        # each repetition runs every attack once, so a passing spell of
                        # load on the shared machine does not fall on one cell's runs alone
                        repeats = settings.repeats(ip_version)
                        for repeat, attack in itertools.product(range(repeats), attacks):
                            row = one_flood(lab, agent_run, legit, passed, attack, ip_version, mode,
                                            settings, repeat)  # fmt: skip
                            rows.append(row)
                            if progress:
                                print(f"  done: IPv{ip_version} {mode:<3} {attack} "
                                      f"(run {repeat + 1}/{repeats})", flush=True,
                                      file=sys.stderr)  # fmt: skip
                        cases = [c for c in settings.syn_cpu if c[1] == mode]
                        if not cases or napi is None:
                            continue
                        # IPv6: the victim's SYN-ACKs to the spoofed sources leave its
                        # interface (a route to the attacker); IPv4: no route back
                        with (lab.answers_to_spoofed_v6() if ip_version == 6
                              else contextlib.nullcontext()):  # fmt: skip
                            for repeat, case in itertools.product(range(repeats), cases):
                                syn.append(syn_cpu_case(lab, agent_run, legit, services, passed,
                                                        napi, case, ip_version,
                                                        settings))  # fmt: skip
                                if progress:
                                    print(f"  done: SYN CPU IPv{ip_version} {mode} {case[0]} "
                                          f"(run {repeat + 1}/{repeats})", flush=True,
                                          file=sys.stderr)  # fmt: skip
    return quiet, rows, syn


# ---------- the table --------------------------------------------------------------------


def _pct(share: float | None) -> str:
    if share is None:
        return "-"
    value = share * 100
    return f"{value:.0f}" if value >= 99.95 or value < 10 else f"{value:.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _rules_text(o: Outcome) -> str:
    """Each rule in the kernel at the flood's end with the packets it dropped and spared
    (the rules reported as added when the counters could not be read)."""
    if o.rule_counts:
        return "; ".join(f"{d} [dropped {n:,}, spared {m:,}]" for d, n, m in o.rule_counts)
    return "; ".join(o.rules) or "-"


def _cell(values: Sequence[float | None]) -> str:
    """One cell over a cell's runs: the value, or with several runs the median and the
    range, "median [min-max]" ("-": nothing measured)."""
    got = sorted(v for v in values if v is not None)
    if not got:
        return "-"
    if len(got) == 1 or got[0] == got[-1]:
        return _pct(got[0])
    return f"{_pct(statistics.median(got))} [{_pct(got[0])}-{_pct(got[-1])}]"


def _count(values: Sequence[int | None]) -> str:
    """Counts over a cell's runs: their median, and the largest when it differs."""
    got = sorted(v for v in values if v is not None)
    if not got:
        return "-"
    med = statistics.median(got)
    return f"{med:g}" if got[-1] == med else f"{med:g} (max {got[-1]})"


def table(quiet: list[Outcome], rows: list[Outcome]) -> list[str]:
    """The printed table: one line per attack, IP version and mode, each cell the median
    of its runs with the range when they differ."""
    runs: dict[tuple[str, int, str], list[Outcome]] = {}
    for o in (*quiet, *rows):
        runs.setdefault((o.attack, o.ip_version, o.mode), []).append(o)
    repeat = max((len(v) for v in runs.values()), default=1)
    lines = [
        "legit success in % (dl: the download's bytes/s during the flood over the "
        f"{BEFORE_S:g} s before it; dl@rule: the same from the first rule to the flood's end); "
        "dropped: % of the attack's packets kept from the victim's stack from the first full "
        "100 ms window after the first rule (no rule: over the whole flood); "
        + (f"median [min-max] of {repeat} runs; " if repeat > 1 else "")
        + "lost: the client's frames that did not reach the victim's stack (pass counter "
        "against its interface's tx, read a moment apart: a few either way, down to -19 "
        "seen, is that skew); drops: frames any lab "
        "interface, bridge port or input backlog dropped; retx: the victim's TCP "
        "retransmissions",
    ]
    for (attack, version, mode), cell in runs.items():
        ref = cell[0]
        kpps = statistics.median(o.attack_pps for o in cell) / 1000
        parts = [
            f"{h} {_cell([o.success(c) for o in cell])}"
            for h, c in zip(CLASS_HEADS, CLASSES, strict=True)
        ]
        parts.append(f"dl@rule {_cell([o.download_from_rule() for o in cell])}")
        parts.append(f"dropped {_cell([o.dropped for o in cell])}")
        parts.append(f"lost {_count([o.client_lost for o in cell])}")
        parts.append(f"drops {_count([o.path.link_drops if o.path else None for o in cell])}")
        retx = [o.path.victim_stack.get("Tcp.RetransSegs") if o.path else None for o in cell]
        parts.append(f"retx {_count(retx)}")
        if ref.rule_ms is not None:
            parts.append(f"det/rule ms {_ms(statistics.median(o.detect_ms or 0 for o in cell))}/"
                         f"{_ms(statistics.median(o.rule_ms or 0 for o in cell))}")  # fmt: skip
        head = f"{attack:<24} v{version} {mode.upper():<3} {kpps:5.1f} kpps  {ref.family:<24}"
        lines.append(f"{head} | " + " | ".join(parts))
        if mode == "on" and attack != "(no flood)":
            lines.append(f"{'':<24}          rules: {_rules_text(ref)}")
    fresh = [o for o in rows if o.legit.udp_new_client is not None]
    if fresh:
        lines.append("")
        lines.append(
            "UDP service, clients first seen during the flood (one request each from an "
            "address never used before; first run of each cell), success in %:"
        )
        for o in fresh:
            assert o.legit.udp_new_client is not None
            c = o.legit.udp_new_client
            lines.append(
                f"  {o.attack:<22} IPv{o.ip_version} {o.mode.upper():<3} "
                f"{_pct(c.success_rate):>5}  ({c.succeeded}/{c.attempts}); the same UDP "
                f"service from the client that talked before: {_pct(o.success('udp_request'))}"
            )
    rates = sorted(o.attack_pps for o in rows if o.attack_pps)
    if rates:
        lines.append("")
        lines.append(
            f"attack rate into the bridge over {len(rates)} floods: min {rates[0] / 1000:.1f}, "
            f"median {statistics.median(rates) / 1000:.1f}, max {rates[-1] / 1000:.1f} kpps "
            "(what the lab sustained while shared; the tbf qdisc paces evenly, see lab.pacing)"
        )
    return lines


def _num(values: Sequence[float], fmt: str) -> str:
    """Numbers over a case's runs: the value, or the median and [min-max]."""
    got = sorted(values)
    if got[0] == got[-1]:
        return format(got[0], fmt)
    return f"{format(statistics.median(got), fmt)} [{format(got[0], fmt)}-{format(got[-1], fmt)}]"


def syn_cpu_table(cases: list[SynCpu]) -> list[str]:
    """The SYN-flood CPU table: one line per case and IP version (median [min-max] of
    its runs)."""
    if not cases:
        return []
    runs: dict[tuple[str, int], list[SynCpu]] = {}
    for c in cases:
        runs.setdefault((c.label, c.ip_version), []).append(c)
    lines = [
        f"SYN flood to :{SYN_PORT} (syn_flood, random sources), from {SYN_CPU_SKIP_S:g} s after "
        "the flood's start to its end: victim rx: the CPU the victim's kernel spent receiving "
        "(its interface's NAPI polls: XDP for every frame, its stack for what XDP passed, "
        "answers handed to the wire), in cores and us per frame received (lab.napitime); "
        "machine softirq and sys: the whole machine's, in cores (trafgen's sending and the "
        "machine's other tenants included: a noisy reference); cookies: the victim's "
        "SyncookiesSent; "
        "tx: frames its interface sent; no route: its answers dropped for want of a route "
        "(IPv4: the spoofed sources have none; IPv6: routed to the attacker, so they leave); "
        "clients: new connections to :80 over the whole flood",
        f"{'case':<28} v {'kpps':>5} | victim rx cores | us/frame | machine softirq | sys | "
        "cookies | tx | no route | clients | rule [dropped, spared] (first run)",
    ]
    for (label, version), cell in runs.items():
        ref = cell[0]
        kpps = (f"{statistics.median(c.attack_pps for c in cell) / 1000:5.1f}" if ref.flood
                else f"{'-':>5}")  # fmt: skip
        clients = _cell([c.connected.success_rate if c.connected else None for c in cell])
        rules = "; ".join(f"{d} [{n:,}, {m:,}]" for d, n, m in ref.rules) or "-"
        lines.append(
            f"{label:<28} {version} {kpps} | "
            f"{_num([c.victim_rx.ns / 1e9 / c.window_s for c in cell], '.3f')} | "
            f"{_num([c.victim_rx.ns / 1e3 / max(1, c.victim_rx.frames) for c in cell], '.2f')} | "
            f"{_num([c.softirq_cores for c in cell], '.2f')} | "
            f"{_num([c.system_cores for c in cell], '.2f')} | "
            f"{_num([c.syncookies_sent for c in cell], ',.0f')} | "
            f"{_num([c.victim_tx for c in cell], ',.0f')} | "
            f"{_num([c.no_route for c in cell], ',.0f')} | {clients} | {rules}"
        )
    return lines


def parse_args(argv: Sequence[str]) -> Settings:
    p = argparse.ArgumentParser(prog="python -m bench.bench_collateral",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--attack", action="append", choices=ATTACKS, metavar="PROFILE",
                   help=f"only this attack (repeatable); one of: {', '.join(ATTACKS)}")  # fmt: skip
    p.add_argument("--ip", type=int, choices=(4, 6), action="append",
                   help="only this IP version (repeatable)")  # fmt: skip
    quick = f"{len(QUICK_ATTACKS)} attacks, IPv4 only, {QUICK_FLOOD_S:.0f} s floods"
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--seconds", type=float, help=f"flood length (default {FLOOD_S:.0f})")
    p.add_argument("--pps", type=int, default=FLOOD_PPS, help="flood rate asked for")
    p.add_argument("--repeat", type=int, default=REPEAT,
                   help=f"runs of each IPv4 cell (default {REPEAT}; --quick: 1)")  # fmt: skip
    p.add_argument("--repeat-v6", type=int, default=REPEAT_V6,
                   help=f"runs of each IPv6 cell (default {REPEAT_V6})")  # fmt: skip
    syn = p.add_mutually_exclusive_group()
    syn.add_argument("--no-syn-cpu", action="store_true",
                     help="leave out the SYN-flood CPU table (--quick leaves it out)")  # fmt: skip
    syn.add_argument("--syn-cpu-only", action="store_true",
                     help="only the SYN-flood CPU table (no attack table)")  # fmt: skip
    args = p.parse_args(argv)
    if args.seconds is not None and not 0.5 <= args.seconds <= 30:
        p.error("--seconds: 0.5 .. 30")
    if not 1000 <= args.pps <= 200_000:
        p.error("--pps: 1000 .. 200000")
    for name, value in (("--repeat", args.repeat), ("--repeat-v6", args.repeat_v6)):
        if not 1 <= value <= 10:
            p.error(f"{name}: 1 .. 10")
    attacks = tuple(args.attack or (QUICK_ATTACKS if args.quick else ATTACKS))
    versions = tuple(sorted(set(args.ip or ((4,) if args.quick else (4, 6)))))
    seconds = args.seconds or (QUICK_FLOOD_S if args.quick else FLOOD_S)
    repeat = 1 if args.quick and "--repeat" not in argv else args.repeat
    syn_cpu = () if args.no_syn_cpu or (args.quick and not args.syn_cpu_only) else SYN_CPU_CASES
    return Settings(() if args.syn_cpu_only else attacks, versions, seconds, args.pps,
                    repeat=repeat, repeat_v6=args.repeat_v6, syn_cpu=syn_cpu)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    # `python -m bench collateral` passes its own arguments: only ours count here
    settings = parse_args([] if argv is None and __name__ != "__main__" else
                          (sys.argv[1:] if argv is None else argv))  # fmt: skip
    if os.geteuid() != 0 or shutil.which("trafgen") is None:
        print("bench_collateral: needs root and trafgen (the collateral lab); skipped")
        return
    logging.getLogger("ftagent").setLevel(logging.ERROR)  # the table, not the agent's log
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ftbench-collateral-") as d:
        quiet, rows, syn = run(settings, Path(d))
    print(
        f"floods: {settings.pps:,} pps asked for, {settings.flood_s:g} s each, paced by a tbf "
        f"qdisc, random sources; kpps: the attack's mean rate into the bridge; runs per cell: "
        f"IPv4 {settings.repeat}, IPv6 {settings.repeat_v6}"
    )
    if settings.attacks:
        for line in table(quiet, rows):
            print(line)
        print()
    for line in syn_cpu_table(syn):
        print(line)
    print(f"(bench took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()

"""Spread floods over the fleet lab and what they do on each node.

    plan = below_node_floors("dns_amplification", floors, nodes=4, seconds=8)
    flood = spray(lab, plan)                  # bounded; stops by itself
    with AttackMeter.attach(lab) as meter:    # per node: frames arrived / passed XDP
        ...
        meter.dropped_share(i, since=t)       # share of node i's attack dropped since t
    with FleetLegit.start(lab) as legit:      # one lab.legit generator per node
        legit.measure(3.0)                    # [LegitResult] per node, measured together

Each node's share of a spread flood stays below that node's agent's own floors (so no
agent alone sees an attack), while the sum over the nodes is a multiple of them.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from lab.fleet import FleetLab
from lab.legit import LegitResult, LegitTraffic
from lab.passcount import SpreadCounter
from lab.trafgen import AMPLIFICATION_SPORTS, Flood, TrafgenError, frame_bytes, start_spread_flood

SAMPLE_S = 0.1  # the attack meter's window
SPREADABLE = ("udp_flood", *AMPLIFICATION_SPORTS)


@dataclass(frozen=True, slots=True)
class SpreadPlan:
    profile: str
    node_pps: int  # what each node receives
    nodes: int
    seconds: float

    @property
    def total_pps(self) -> int:
        return self.node_pps * self.nodes

    @property
    def packets(self) -> int:
        return int(self.total_pps * self.seconds)


def node_floor_pps(profile: str, floors: Any) -> float:
    """The lowest of the agent's floors (`ftagent.config.Floors`) that a flood of
    `profile` counts against, in packets per second of that flood: overall pps, UDP pps,
    bits per second over the profile's frame size, and for an amplification profile the
    per-port floor."""
    if profile not in SPREADABLE:
        raise TrafgenError(f"profile {profile!r}: a spread flood is one of {SPREADABLE}")
    limits = [floors.pps, floors.udp_pps, floors.bps / (8 * frame_bytes(profile))]
    if profile in AMPLIFICATION_SPORTS:
        limits.append(floors.amp_port_pps)
    return float(min(limits))


def below_node_floors(
    profile: str, floors: Any, *, nodes: int, seconds: float, fraction: float = 0.6
) -> SpreadPlan:
    """A spread flood whose share on each node is `fraction` of that node's lowest floor
    (node_floor_pps): below every agent's own thresholds, with room for the node's real
    traffic; its sum is fraction x nodes times that floor."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction: between 0 and 1, got {fraction}")
    if nodes < 1 or seconds <= 0:
        raise ValueError(f"nodes >= 1 and seconds > 0, got {nodes}, {seconds}")
    node_pps = int(node_floor_pps(profile, floors) * fraction)
    return SpreadPlan(profile, node_pps, nodes, seconds)


def spray(lab: FleetLab, plan: SpreadPlan, victims: list[int] | None = None) -> Flood:
    """Start `plan` from the attacker over the lab's victims (the first plan.nodes, or
    the given indexes), paced and bounded; ends by itself after plan.seconds (stop_flood
    ends it sooner)."""
    chosen = list(range(plan.nodes)) if victims is None else victims
    if len(chosen) != plan.nodes:
        raise ValueError(f"victims: {plan.nodes} needed, got {len(chosen)}")
    endpoints = [lab.node(i).endpoints() for i in chosen]
    return start_spread_flood(lab.attacker.ns, lab.attacker.ifname, endpoints, plan.profile,
                              packets=plan.packets, pps=plan.total_pps)  # fmt: skip


@dataclass
class AttackMeter:
    """Every SAMPLE_S: (Unix time, per victim MAC: attacker frames that entered the
    bridge for it, attacker frames that passed its XDP). The counters are tc programs
    (lab.passcount.SpreadCounter): at the attacker's bridge port and on every victim's
    interface. Attach it once the agents run (it joins their clsact qdisc) and close it
    before they stop or with the lab."""

    lab: FleetLab
    arrived: SpreadCounter
    passed: SpreadCounter
    samples: list[tuple[float, dict[str, int], dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def attach(cls, lab: FleetLab) -> AttackMeter:
        macs = [v.mac for v in lab.victims]
        arrived = SpreadCounter.attach([(lab.bridge_ns, lab.attacker.port)], lab.attacker.mac,
                                       macs)  # fmt: skip
        try:
            passed = SpreadCounter.attach([(v.ns, v.ifname) for v in lab.victims],
                                          lab.attacker.mac, macs)  # fmt: skip
        except BaseException:
            arrived.close()
            raise
        meter = cls(lab, arrived, passed)
        meter._thread = threading.Thread(target=meter._run, name="attack-meter", daemon=True)
        meter._thread.start()
        return meter

    def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            self.samples.append((time.time(), self.arrived.read_all(), self.passed.read_all()))
            next_at += SAMPLE_S
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return

    def totals(self, i: int) -> tuple[int, int]:
        """(arrived, passed) attacker frames of victim i so far."""
        mac = self.lab.victims[i].mac
        return self.arrived.read(mac), self.passed.read(mac)

    def dropped_share(self, i: int, since: float, until: float | None = None) -> float | None:
        """The share of victim i's attack frames dropped before its stack between the
        meter's first sample at or after Unix time `since` and its last one by `until`;
        None when no attack frame arrived then."""
        mac = self.lab.victims[i].mac
        inside = [
            s for s in list(self.samples) if s[0] >= since and (until is None or s[0] <= until)
        ]
        if len(inside) < 2:
            return None
        # the span's totals, not window by window: a frame counted at the bridge at the
        # end of one window passes XDP in the next, which per-window sums would miscount
        arrived = inside[-1][1][mac] - inside[0][1][mac]
        passed = inside[-1][2][mac] - inside[0][2][mac]
        return 1.0 - min(passed, arrived) / arrived if arrived > 0 else None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.passed.close()
        self.arrived.close()

    def __enter__(self) -> AttackMeter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()


@dataclass
class FleetLegit:
    """The client's real traffic to every node (lab.legit, one generator per node: new TCP
    connections, the UDP service it talked to before, the node's own DNS lookups to the
    client's resolver, ping, one long download)."""

    generators: list[LegitTraffic]

    @classmethod
    def start(cls, lab: FleetLab, nodes: int | None = None) -> FleetLegit:
        count = len(lab.victims) if nodes is None else nodes
        generators: list[LegitTraffic] = []
        try:
            for i in range(count):
                generators.append(LegitTraffic.start(lab.node(i), ip_version=4))
        except BaseException:
            for g in generators:
                g.close()
            raise
        return cls(generators)

    def measure(self, duration_s: float) -> list[LegitResult]:
        """Every node's classes measured over the same `duration_s`, node by node."""
        with ThreadPoolExecutor(len(self.generators)) as pool:
            return list(pool.map(lambda g: g.measure(duration_s), self.generators))

    def close(self) -> None:
        for g in self.generators:
            g.close()

    def __enter__(self) -> FleetLegit:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()


def success_ratio(during: LegitResult, quiet: LegitResult) -> dict[str, float]:
    """Per class: the success rate during a flood over the no-flood one (1.0 = as good)."""
    q = quiet.classes()
    return {name: (r.success_rate / q[name].success_rate if q[name].success_rate else 0.0)
            for name, r in during.classes().items()}  # fmt: skip

"""Per group, per whole second: the sum of its members' one-second points.

The metrics route hands every post's points to `Seconds.add` (a few dict writes, no
database). A group's second is evaluated once every *expected* member reported it, or
`grace_s` after the second ended, whichever comes first. A member that has not reported
it by then is *missing* for that second: the sum is then a lower bound (it may still show
an attack), never a measurement of quiet (the engine neither learns it nor counts it
towards a cool-down). A member whose last point arrived more than `stale_s` ago is no
longer expected, nor is one that does not post every second (an agent from before the
fleet release posts a batch every few seconds: it could never be in time, and would
leave every second incomplete); its points count when they land in a second not yet
evaluated. A point for a second already evaluated is late and dropped.

A member whose point says it is in an incident of its own (`attack`) reported, but its
traffic is left out of the sum: its own agent detected and answers that attack; the
group's sum is what no node sees alone (a node's attack must not also become a fleet
incident). Such a second is not learned either.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ftcontract.agent_api import FleetRuleReport, MetricPoint
from ftcontract.classify import AMP_PORTS, METRICS, amp_metric

# Points further ahead than this (a wrong clock) or older than this are not kept.
MAX_AHEAD_S = 5
KEEP_S = 120
GAPS_KEPT = 3


@dataclass(frozen=True, slots=True)
class NodeSecond:
    """One node's second as the fleet needs it."""

    metrics: dict[str, float]
    udp_ports: dict[str, float]
    ipv6_pps: float
    fleet_rules: tuple[FleetRuleReport, ...] = ()
    own_attack: bool = False  # the node's own agent has an incident this second


def node_second(point: MetricPoint) -> NodeSecond:
    """A metric point on the classifier's metric names (ftcontract.classify.METRICS)."""
    protocols, flags = point.protocols, point.tcp_flags
    metrics = {
        "pps": point.pps,
        "bps": point.bps,
        "tcp_pps": protocols.get("tcp", 0.0),
        "udp_pps": protocols.get("udp", 0.0),
        "icmp_pps": protocols.get("icmp", 0.0),
        "fragment_pps": protocols.get("fragment", 0.0),
        "syn_pps": flags.get("syn", 0.0),
        "ack_pps": flags.get("ack", 0.0),
        "rst_pps": flags.get("rst", 0.0),
    }
    amp = 0.0
    for port in AMP_PORTS:
        value = point.udp_ports.get(str(port), 0.0)
        if value:
            metrics[amp_metric(port)] = value
            amp += value
    metrics["amp_pps"] = amp
    # the point's own udp_ports (decoded for this post, never changed): no copy per point
    rules = tuple(point.fleet_rules) if point.fleet_rules else ()
    return NodeSecond(metrics, point.udp_ports, point.ipv6_pps, rules, point.attack)


@dataclass(slots=True)
class GroupSecond:
    """One evaluated second of a group."""

    second: int
    metrics: dict[str, float]
    udp_ports: dict[str, float]
    ipv6_pps: float
    reporters: dict[int, NodeSecond]  # node id -> its second
    missing: frozenset[int]  # expected members that did not report it
    attacked: frozenset[int] = frozenset()  # reporters in an attack of their own: not summed

    @property
    def complete(self) -> bool:
        return not self.missing


def sum_seconds(
    second: int, reporters: dict[int, NodeSecond], missing: Iterable[int]
) -> GroupSecond:
    metrics = dict.fromkeys(METRICS, 0.0)
    ports: dict[str, float] = {}
    ipv6 = 0.0
    attacked = frozenset(n for n, ns in reporters.items() if ns.own_attack)
    for n, ns in reporters.items():
        if n in attacked:
            continue
        for k, v in ns.metrics.items():
            metrics[k] = metrics.get(k, 0.0) + v
        for k, v in ns.udp_ports.items():
            ports[k] = ports.get(k, 0.0) + v
        ipv6 += ns.ipv6_pps
    return GroupSecond(second, metrics, ports, ipv6, reporters, frozenset(missing), attacked)


@dataclass(slots=True)
class GroupCursor:
    """Where a group's evaluation stands: the next second to evaluate."""

    next_second: int | None = None


@dataclass(slots=True)
class Seconds:
    """One workspace's recent points by second and node, and when each node last posted."""

    grace_s: float
    stale_s: float
    by_second: dict[int, dict[int, NodeSecond]] = field(default_factory=dict)
    last_seen: dict[int, float] = field(default_factory=dict)  # node id -> arrival time
    # node id -> the time between its last posts (a few): its posting cadence
    gaps: dict[int, deque[float]] = field(default_factory=dict)
    late: int = 0  # points dropped because their second was already evaluated
    floor: int = 0  # seconds below this were evaluated by every group: not kept

    def add(self, node_id: int, points: Iterable[MetricPoint], now: float) -> None:
        for point in points:
            second = math.floor(point.ts)
            if second < self.floor or second > now + MAX_AHEAD_S or second < now - KEEP_S:
                self.late += 1
                continue
            self.by_second.setdefault(second, {})[node_id] = node_second(point)
        last = self.last_seen.get(node_id)
        if last is not None:
            self.gaps.setdefault(node_id, deque(maxlen=GAPS_KEPT)).append(now - last)
        self.last_seen[node_id] = now

    def expect(self, node_id: int, now: float) -> None:
        """Expect the node from `now` on as if it had just posted (a restarted engine: it
        was reporting before the stop). Until it posts again, or goes stale, the seconds
        it has not reported are incomplete: never learned, never counted as quiet."""
        self.last_seen.setdefault(node_id, now)

    def expected(self, members: Iterable[int], now: float) -> set[int]:
        """Members that post every second and are not stale (last post within stale_s).
        The shortest of a node's last gaps says its cadence: one long gap (an outage)
        does not make a per-second node a batching one."""
        seen, gaps, every = self.last_seen, self.gaps, 1.0 + self.grace_s
        return {
            n
            for n in members
            if n in seen
            and now - seen[n] <= self.stale_s
            and (n not in gaps or min(gaps[n]) <= every)
        }

    def due(self, cursor: GroupCursor, members: frozenset[int], now: float) -> list[GroupSecond]:
        """The group's seconds ready to be evaluated now, in order (the cursor moves past)."""
        if cursor.next_second is None:
            starts = [s for s, nodes in self.by_second.items() if members & nodes.keys()]
            if not starts:
                return []
            cursor.next_second = min(starts)
        second = max(cursor.next_second, math.floor(now) - KEEP_S)
        out: list[GroupSecond] = []
        if second + 1 + self.grace_s > now and not self.by_second.get(second):
            # no point of the next second yet and its grace not over: nothing is due (most
            # ticks end here, without the expected set, a pass over every member)
            return out
        expected = self.expected(members, now)
        while second + 1 + self.grace_s <= now or self._all_in(second, expected):
            nodes = self.by_second.get(second, {})
            reporters = {n: nodes[n] for n in members if n in nodes}
            if reporters or expected:
                out.append(sum_seconds(second, reporters, expected - reporters.keys()))
            second += 1
        cursor.next_second = second
        return out

    def _all_in(self, second: int, expected: set[int]) -> bool:
        return bool(expected) and expected <= self.by_second.get(second, {}).keys()

    def prune(self, cursors: Iterable[GroupCursor], now: float) -> None:
        """Forget seconds every group has evaluated (and anything too old)."""
        floor = math.floor(now) - KEEP_S
        nexts = [c.next_second for c in cursors if c.next_second is not None]
        if nexts:
            floor = max(floor, min(nexts))
        self.floor = max(self.floor, floor)
        for s in [s for s in self.by_second if s < self.floor]:
            del self.by_second[s]

    def forget(self, node_id: int) -> None:
        self.last_seen.pop(node_id, None)
        self.gaps.pop(node_id, None)

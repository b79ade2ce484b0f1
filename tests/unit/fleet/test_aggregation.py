"""Group seconds: summed when every expected member reported, or after the grace; a
member that did not report is missing (never zero); stale members are not expected."""

from __future__ import annotations

import msgspec

from control.fleet.aggregation import GroupCursor, Seconds, node_second
from ftcontract.agent_api import MetricPoint

T0 = 1_765_150_000


def pt(second: int, pps: float, dns: float = 0.0) -> MetricPoint:
    return MetricPoint(
        ts=float(second),
        pps=pps,
        bps=pps * 8000,
        protocols={"udp": pps},
        udp_ports={"53": dns} if dns else {},
    )


def test_a_point_on_the_classifier_metrics() -> None:
    ns = node_second(pt(T0, 900.0, dns=850.0))
    assert ns.metrics["udp_pps"] == 900.0
    assert ns.metrics["amp_53_pps"] == 850.0
    assert ns.metrics["amp_pps"] == 850.0
    assert ns.udp_ports == {"53": 850.0}


def test_second_evaluated_once_every_expected_member_reported() -> None:
    s = Seconds(grace_s=1.5, stale_s=10.0)
    cursor = GroupCursor()
    members = frozenset({1, 2})
    now = T0 + 0.2
    s.add(1, [pt(T0 - 1, 10)], now)  # both nodes known (expected) from an earlier second
    s.add(2, [pt(T0 - 1, 10)], now)
    assert [g.second for g in s.due(cursor, members, now)] == [T0 - 1]
    s.add(1, [pt(T0, 100)], now)
    assert s.due(cursor, members, now) == []  # node 2 not in yet, grace not over
    s.add(2, [pt(T0, 50)], now + 0.1)
    (second,) = s.due(cursor, members, now + 0.1)
    assert second.second == T0 and second.complete
    assert second.metrics["pps"] == 150.0


def test_member_late_past_grace_is_missing_not_zero() -> None:
    s = Seconds(grace_s=1.5, stale_s=10.0)
    cursor = GroupCursor()
    members = frozenset({1, 2})
    s.add(1, [pt(T0 - 1, 10)], T0)
    s.add(2, [pt(T0 - 1, 10)], T0)
    s.due(cursor, members, T0)
    s.add(1, [pt(T0, 100)], T0 + 0.5)
    assert s.due(cursor, members, T0 + 2.0) == []  # within the grace
    (second,) = s.due(cursor, members, T0 + 2.6)
    assert second.missing == {2}
    assert not second.complete
    assert second.metrics["pps"] == 100.0  # a lower bound, node 2 not counted as a value
    # node 2's point arrives after the second was evaluated: late, dropped
    s.prune([cursor], T0 + 2.6)
    s.add(2, [pt(T0, 50)], T0 + 2.7)
    assert s.late == 1


def test_stale_member_leaves_the_expected_set() -> None:
    s = Seconds(grace_s=1.5, stale_s=10.0)
    cursor = GroupCursor()
    members = frozenset({1, 2})
    s.add(1, [pt(T0, 10)], T0 + 0.5)
    s.add(2, [pt(T0, 10)], T0 + 0.5)
    s.due(cursor, members, T0 + 0.5)
    # node 2 falls silent; node 1 keeps posting
    seconds = []
    for k in range(1, 15):
        s.add(1, [pt(T0 + k, 10)], T0 + k + 0.5)
        seconds += s.due(cursor, members, T0 + k + 0.5 + 1.6)
    missing = [g.second for g in seconds if 2 in g.missing]
    complete = [g.second for g in seconds if g.complete]
    assert missing and complete
    assert max(missing) < min(complete)  # missing while expected, then not expected
    assert all(g.metrics["pps"] == 10.0 for g in seconds)


def test_prune_forgets_evaluated_seconds() -> None:
    s = Seconds(grace_s=1.5, stale_s=10.0)
    cursor = GroupCursor()
    s.add(1, [pt(T0 + k, 10) for k in range(5)], T0 + 5)
    s.due(cursor, frozenset({1}), T0 + 10)
    s.prune([cursor], T0 + 10)
    assert s.by_second == {}


def test_a_node_in_its_own_attack_is_left_out_of_the_sum() -> None:
    s = Seconds(grace_s=1.5, stale_s=10.0)
    cursor = GroupCursor()
    own = msgspec.structs.replace(pt(T0, 52_000.0), attack=True)
    s.add(1, [own], T0 + 0.5)
    s.add(2, [pt(T0, 100.0)], T0 + 0.5)
    (second,) = s.due(cursor, frozenset({1, 2}), T0 + 3)
    assert second.complete and second.attacked == {1}
    assert second.metrics["pps"] == 100.0


def test_a_batching_agent_is_not_expected_but_counts_when_in_time() -> None:
    """An agent from before the fleet release posts a batch every 10 s: waiting for it
    would leave every second incomplete (never learned, never cooling down)."""
    s = Seconds(grace_s=1.5, stale_s=10.0)
    cursor = GroupCursor()
    members = frozenset({1, 2})
    evaluated = []
    for k in range(30):
        now = T0 + k + 0.5
        s.add(1, [pt(T0 + k, 10)], now)  # a per-second agent
        if k % 10 == 9:  # the old agent: ten points at once
            s.add(2, [pt(T0 + j, 5) for j in range(k - 9, k + 1)], now)
        evaluated += s.due(cursor, members, now)
    late = [g for g in evaluated if g.second >= T0 + 20]
    assert late and all(g.complete for g in late)
    # its newest point landed in a second not yet evaluated: counted
    assert any(g.metrics["pps"] == 15.0 for g in evaluated)


def test_one_outage_does_not_make_a_per_second_node_a_batching_one() -> None:
    s = Seconds(grace_s=1.5, stale_s=10.0)
    for k in range(5):
        s.add(1, [pt(T0 + k, 10)], T0 + k + 0.5)
    s.add(1, [pt(T0 + 8, 10)], T0 + 8.5)  # 4 s without a post
    assert s.expected({1}, T0 + 9.0) == {1}

"""The live hub's fan-out: one encoding per event whatever the number of viewers."""

from __future__ import annotations

from contextlib import ExitStack

import msgspec

from control.dashboard.live import LiveHub
from ftcontract.agent_api import MetricPoint


def test_fifty_viewers_of_one_node_share_one_encoded_event() -> None:
    hub = LiveHub()
    with ExitStack() as stack:
        queues = [stack.enter_context(hub.subscribe(1, "node-a")) for _ in range(50)]
        overview = stack.enter_context(hub.subscribe(1))
        elsewhere = stack.enter_context(hub.subscribe(2))
        hub.publish_points(1, "node-a", [MetricPoint(ts=1.0, pps=5.0, bps=40.0)])
        assert hub.published == 1
        events = [q.get_nowait() for q in queues]
        assert all(e is events[0] for e in events)  # the same object, encoded once
        assert overview.get_nowait() is events[0]
        assert elsewhere.empty()
        assert hub.subscribers(1, "node-a") == 50
    assert hub.subscribers(1, "node-a") == 0  # closed streams leave nothing behind


def test_a_reader_that_falls_behind_loses_its_oldest_events() -> None:
    hub = LiveHub(queue_events=3)
    with hub.subscribe(1, "n") as queue:
        hub.publish_points(1, "n", [MetricPoint(ts=float(t), pps=1.0, bps=8.0) for t in range(5)])
        kept = [queue.get_nowait().data for _ in range(queue.qsize())]
    assert ['"ts":2.0' in kept[0], '"ts":4.0' in kept[-1], len(kept)] == [True, True, 3]


def test_nobody_watching_costs_no_encoding() -> None:
    hub = LiveHub()
    hub.publish_points(1, "n", [MetricPoint(ts=1.0, pps=1.0, bps=8.0)])
    hub.publish_incident(1, "opened", "u", {"uuid": "u"})
    assert hub.published == 0


def test_workspace_totals_count_each_nodes_second_once_within_the_window() -> None:
    hub = LiveHub()
    totals = hub.totals
    hub.publish_points(1, "a", [MetricPoint(ts=100.2, pps=10.0, bps=0.0, dropped_pps=4.0)])
    hub.publish_points(1, "b", [MetricPoint(ts=100.7, pps=5.0, bps=0.0, dropped_pps=1.0)])
    hub.publish_points(1, "a", [MetricPoint(ts=100.0, pps=999.0, bps=0.0)])  # a resend
    hub.publish_points(2, "c", [MetricPoint(ts=100.0, pps=7.0, bps=0.0)])  # elsewhere
    assert [tuple(msgspec.to_builtins(t)) for t in totals.snapshot(1)] == [(100, 15.0, 5.0)]
    # Newer seconds push the oldest out of the window; a point older than it is left out.
    late = totals.window_s + 150
    hub.publish_points(1, "a", [MetricPoint(ts=float(t), pps=1.0, bps=0.0) for t in (101, late)])
    hub.publish_points(1, "b", [MetricPoint(ts=101.0, pps=1.0, bps=0.0)])
    assert [t.ts for t in totals.snapshot(1)] == [late]
    assert [t.ts for t in totals.snapshot(2)] == [100]
    assert totals.snapshot(3) == []

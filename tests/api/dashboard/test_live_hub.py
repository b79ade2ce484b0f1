"""The live hub's fan-out: one encoding per event whatever the number of viewers."""

from __future__ import annotations

from contextlib import ExitStack

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

from __future__ import annotations

from pathlib import Path

from ftagent.report.spool import Pending, Spool


def metric(i: int) -> Pending:
    return Pending("metrics", "metrics", b'{"ts":%d}' % i + b" " * 90, droppable=True)


def event(i: int) -> Pending:
    return Pending("incident_update", f"incidents/u{i}", b"x" * 100, droppable=False)


def test_keeps_order_and_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    spool.append([metric(1), event(2), metric(3)])
    spool.close()
    again = Spool(tmp_path / "s.db")
    assert len(again) == 3
    entries = again.peek(10)
    assert [e.path for e in entries] == ["metrics", "incidents/u2", "metrics"]
    assert [e.droppable for e in entries] == [True, False, True]
    again.remove(entries[:2])
    assert len(again) == 1
    assert again.peek(10)[0].body.startswith(b'{"ts":3}')
    assert again.droppable_bytes == len(metric(3).body)


def test_full_spool_drops_oldest_metrics_never_events(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_droppable_bytes=500)  # room for 5 points
    spool.append([event(0)])
    for i in range(1, 9):
        spool.append([metric(i)])
    spool.append([event(100) for _ in range(20)])  # events do not count against the bound
    entries = spool.peek(100)
    kept_metrics = [e.body[:8] for e in entries if e.droppable]
    assert kept_metrics == [b'{"ts":%d}' % i for i in range(4, 9)]
    assert sum(1 for e in entries if not e.droppable) == 21
    assert entries[0].path == "incidents/u0"  # the oldest event is still first
    assert spool.dropped_total == 3
    assert len(spool) == 26
    assert spool.has_undroppable()


def test_remove_of_already_removed_entries_is_harmless(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    spool.append([metric(1)])
    entries = spool.peek(1)
    spool.remove(entries)
    spool.remove(entries)
    assert len(spool) == 0
    assert spool.droppable_bytes == 0
    assert not spool.has_undroppable()


def test_a_zero_bound_keeps_only_the_newest_points(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_droppable_bytes=0)
    spool.append([metric(1), metric(2)])
    spool.append([metric(3)])
    assert [e.body[:8] for e in spool.peek(10)] == [b'{"ts":3}']
    assert spool.dropped_total == 2

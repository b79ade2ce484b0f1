"""The collateral lab's loss counters: what happened between two reads, and the kernel's
own counters read from this namespace's /proc (no lab needed)."""

from __future__ import annotations

from lab.collateral import VICTIM_STACK_COUNTERS, LinkDrops, PathCounters, _stack_counters


def _counters(scale: int) -> PathCounters:
    return PathCounters(
        hosts={"victim": LinkDrops(100 * scale, 1 * scale, 50 * scale, 0)},
        ports={"victim": LinkDrops(50 * scale, 0, 100 * scale, 2 * scale)},
        backlog_dropped=3 * scale,
        time_squeeze=4 * scale,
        victim_stack={"Tcp.RetransSegs": 5 * scale},
    )


def test_difference_of_two_reads_is_what_happened_between_them() -> None:
    delta = _counters(3) - _counters(1)
    assert delta.hosts["victim"] == LinkDrops(200, 2, 100, 0)
    assert delta.ports["victim"] == LinkDrops(100, 0, 200, 4)
    assert (delta.backlog_dropped, delta.time_squeeze) == (6, 8)
    assert delta.victim_stack == {"Tcp.RetransSegs": 10}
    # every drop on the path: interfaces' and ports' rx and tx drops, and the backlogs'
    assert delta.link_drops == 2 + 4 + 6


def test_stack_counters_are_read_by_section_and_name() -> None:
    got = _stack_counters(VICTIM_STACK_COUNTERS)
    assert set(got) == {f"{section}.{name}" for section, name in VICTIM_STACK_COUNTERS}
    assert all(value >= 0 for value in got.values())

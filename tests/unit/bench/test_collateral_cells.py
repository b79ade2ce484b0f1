"""The collateral benchmark's cells over repeated runs: the median with the range when the
runs differ (pure formatting of numbers the runs measured)."""

from __future__ import annotations

from bench.bench_collateral import _cell, _count


def test_one_run_or_equal_runs_show_the_value_alone() -> None:
    assert _cell([0.996]) == "99.6"
    assert _cell([1.0, 1.0, 1.0]) == "100"


def test_runs_that_differ_show_median_and_range() -> None:
    assert _cell([0.883, 1.0, 0.996]) == "99.6 [88.3-100]"


def test_runs_without_a_value_are_left_out_and_none_at_all_is_a_dash() -> None:
    assert _cell([None, 0.95, None]) == "95.0"
    assert _cell([None, None]) == "-"


def test_counts_show_the_median_and_the_largest_when_it_differs() -> None:
    assert _count([0, 0, 0]) == "0"
    assert _count([1, 0, 27]) == "1 (max 27)"
    assert _count([None]) == "-"

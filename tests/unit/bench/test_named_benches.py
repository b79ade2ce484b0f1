"""Every benchmark the docs name exists, and every benchmark is listed in the docs.

The docs state measured numbers only beside the `python -m bench NAME` that prints them;
this keeps those names honest when a bench is renamed or removed. It reads the names,
never the numbers (a number's truth is the bench's output, not something a test parses).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import bench.__main__ as bench_main

ROOT = Path(__file__).resolve().parents[3]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
# `python -m bench agent`, `python -m bench.bench_collateral`, "(`make bench`, table `dashboard`)"
NAMED = re.compile(
    r"python -m bench(?:\.bench_|\s+)([a-z][a-z_]*)|`make bench`, table `([a-z][a-z_]*)`"
)
# a row of the benchmark table in docs/development.md: "| `datapath` | what it measures |"
TABLE_ROW = re.compile(r"^\| `([a-z][a-z_]*)` \|", re.MULTILINE)


def _benches() -> set[str]:
    return {p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py")}


def _named_in_docs() -> dict[str, set[str]]:
    """Bench name -> the doc files that name it."""
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        for match in NAMED.finditer(doc.read_text("utf-8")):
            name = match.group(1) or match.group(2)
            found.setdefault(name, set()).add(str(doc.relative_to(ROOT)))
    return found


def test_every_bench_the_docs_name_exists() -> None:
    named = _named_in_docs()
    assert {"datapath", "agent", "collateral"} <= named.keys()  # the pattern still finds them
    missing = {name: sorted(docs) for name, docs in named.items() if name not in _benches()}
    assert missing == {}


def test_every_bench_has_a_row_in_the_development_benchmark_table() -> None:
    text = (ROOT / "docs" / "development.md").read_text("utf-8")
    section = text[text.index("## Benchmarks") :]
    assert _benches() <= set(TABLE_ROW.findall(section))


def test_an_unknown_bench_name_is_an_error_not_an_empty_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["bench", "no_such_bench"])
    assert bench_main.main() == 2
    out, err = capsys.readouterr()
    assert "===" not in out  # no benchmark ran
    assert "no_such_bench" in err

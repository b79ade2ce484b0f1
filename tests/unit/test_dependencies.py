"""The dependency picture holds: bpf/ <- ftagent/ -> ftcontract <- control/.

Read from the source (ast), not from what happens to be imported at run time: a lazy
import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_roots(package: str) -> dict[str, set[str]]:
    """Top-level module names each file of `package` imports (relative imports excluded)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), str(path))
        roots: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = roots
    return found


def test_the_contract_imports_msgspec_and_the_standard_library_only() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for file, roots in _imported_roots("ftcontract").items():
        foreign = roots - stdlib - {"msgspec", "ftcontract"}
        assert not foreign, f"{file} imports {sorted(foreign)}"


@pytest.mark.parametrize(("package", "forbidden"), [("control", "ftagent"), ("ftagent", "control")])
def test_agent_and_control_plane_never_import_each_other(package: str, forbidden: str) -> None:
    for file, roots in _imported_roots(package).items():
        assert forbidden not in roots, f"{file} imports {forbidden}"
        assert "tests" not in roots and "lab" not in roots, f"{file} imports test equipment"


@pytest.mark.parametrize("package", ["bench", "lab"])
def test_benchmarks_and_the_lab_take_their_equipment_from_the_lab_never_from_tests(
    package: str,
) -> None:
    # Test equipment lives in lab/ (the agent harness, the notification receivers, the
    # flood runner); a benchmark importing a test module would break when tests move.
    found = _imported_roots(package)
    assert found, f"no modules read under {package}/"
    for file, roots in found.items():
        assert "tests" not in roots, f"{file} imports from tests/"

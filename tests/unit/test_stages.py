"""The agent's stage packages depend one way, in pipeline order.

`ftagent/` groups its modules by the stage of the pipeline they serve. A later stage may
import an earlier one (the planner reads the classifier's verdict), never the reverse: a
detector that imported the mitigator would make detection wait on rule plumbing and would
turn the packages back into one tangle. The loop (`ftagent/agent.py`), the CLI, and the
shared contracts (`config`, `datapath`, `events`) sit outside the stages and wire them.

Read from the source (ast), like test_dependencies.py: a lazy import inside a function
counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "ftagent"

# Pipeline order: each stage may import the stages before it, never one after it.
STAGES = ["link", "detect", "evidence", "mitigate", "respond", "orders", "local"]
# The top-level modules a stage may import: the contracts every stage shares.
SHARED = {"config", "datapath", "events", "__version__"}
# Packages beside the stages that are not stages themselves.
OTHER_PACKAGES = {"bpf", "report", "commands"}


def _ftagent_imports(path: Path) -> set[str]:
    """Dotted names under ftagent that `path` imports (`ftagent.detect.rates`, ...)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("ftagent"))
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; name the stage"
            module = node.module or ""
            if module == "ftagent":
                # `from ftagent import x`: x is itself a module or package under ftagent.
                found.update(f"ftagent.{alias.name}" for alias in node.names)
            elif module.startswith("ftagent."):
                found.add(module)
    return found


def _target(name: str) -> str:
    """What an import reaches inside ftagent: a stage, a package, or a top-level module."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "ftagent"


def test_every_stage_package_exists_and_nothing_else_is_flat() -> None:
    packages = {p.name for p in AGENT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(STAGES) | OTHER_PACKAGES
    flat = {p.stem for p in AGENT.glob("*.py")}
    assert flat == {"__init__", "agent", "cli", "config", "datapath", "events"}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_only_earlier_stages_and_the_shared_contracts(stage: str) -> None:
    earlier = set(STAGES[: STAGES.index(stage) + 1])
    files = sorted((AGENT / stage).rglob("*.py"))
    assert files, f"no modules under ftagent/{stage}/"
    for path in files:
        for name in _ftagent_imports(path):
            target = _target(name)
            allowed = target in earlier or target in SHARED
            assert allowed, f"{path.relative_to(ROOT)} imports {name}: {stage} may not"


def test_the_kernel_side_imports_no_stage() -> None:
    # bpf/ is the layer below the agent: it knows the data path's contract, not the stages.
    for path in sorted((AGENT / "bpf").rglob("*.py")):
        for name in _ftagent_imports(path):
            assert _target(name) not in STAGES, f"{path.relative_to(ROOT)} imports {name}"


def test_the_check_sees_a_backward_import(tmp_path: Path) -> None:
    # The reader must catch both spellings, or the stage test could pass through anything.
    module = tmp_path / "m.py"
    module.write_text(
        "from ftagent.orders.fleet import FleetOrders\n"
        "def later() -> None:\n"
        "    from ftagent import local\n"
        "    import ftagent.respond.response\n"
    )
    targets = {_target(name) for name in _ftagent_imports(module)}
    assert targets == {"orders", "local", "respond"}

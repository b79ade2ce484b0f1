"""contrib/prometheus: the rules and the example scrape config pass promtool, and the
rules' unit tests (fasttrace.rules.test.yml) pass; every metric the rules use exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.capability import require

PROM_DIR = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"
# Each metric the rules read, and the module that exports it.
EXPORTED_BY = {
    "ftcontrol_nodes": "control/ops/metrics.py",
    "ftcontrol_notification_deliveries": "control/ops/metrics.py",
    "ftcontrol_node_incidents_active": "control/agentapi/gauges.py",
    "ftcontrol_node_spool_entries": "control/agentapi/gauges.py",
    "ftagent_xdp_attached": "ftagent/local/http_local.py",
    "ftagent_attack_active": "ftagent/local/http_local.py",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")
    return subprocess.run(
        ["promtool", *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "fasttrace.rules.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "fasttrace.rules.test.yml"),
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expected value changed does."""
    text = (PROM_DIR / "fasttrace.rules.test.yml").read_text()
    broken = text.replace("web-1 (203.0.113.10) under attack", "web-1 (203.0.113.99) under attack")
    assert broken != text
    shutil.copy(PROM_DIR / "fasttrace.rules.yml", tmp_path)
    (tmp_path / "broken.test.yml").write_text(broken)
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")
    result = subprocess.run(
        ["promtool", "test", "rules", "broken.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_metric_in_the_rules_is_exported() -> None:
    rules = (PROM_DIR / "fasttrace.rules.yml").read_text()
    used = set(re.findall(r"\b(ft(?:control|agent)_[a-z0-9_]+)", rules))
    assert used == set(EXPORTED_BY), used
    root = PROM_DIR.parents[1]
    for metric, module in EXPORTED_BY.items():
        assert f'"{metric}"' in (root / module).read_text(), (metric, module)

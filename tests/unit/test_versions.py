"""`ftagent --version` and `ftcontrol --version` print the package's version (the one
pyproject.toml gives the wheel), and both packages agree on it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import control
import ftagent
from control.cli import main as ftcontrol_main
from control.install.versions import agent_outdated
from ftagent.cli import main as ftagent_main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_both_packages_carry_the_wheel_version() -> None:
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert control.__version__ == ftagent.__version__ == version


@pytest.mark.parametrize(
    ("main", "prog"), [(ftagent_main, "ftagent"), (ftcontrol_main, "ftcontrol")]
)
def test_version_flag(main, prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"{prog} {control.__version__}\n"


@pytest.mark.parametrize(
    ("agent", "control_version", "outdated"),
    [
        ("0.0.9", "0.1.0", True),
        ("0.1.0", "0.1.0", False),
        ("0.1", "0.1.0", False),
        ("0.1.0rc1", "0.1.1", True),
        ("0.10.0", "0.9.0", False),
        ("1.0.0", "0.9.9", False),
        (None, "0.1.0", None),
        ("unknown", "0.1.0", None),
    ],
)
def test_agent_outdated(agent: str | None, control_version: str, outdated: bool | None) -> None:
    assert agent_outdated(agent, control_version) is outdated

"""Run packaging/install.sh for real into a temporary prefix.

Only the steps that would touch this machine's real services are stubbed: `apt-get`
(installs packages) and `systemctl` (this container has no running systemd). The stubs
are scripts first on PATH that record their argv; `systemctl is-active` says "active"
for a service named in `active` (to test restart-only-if-running). Everything else is
real: dpkg-query, apt-cache, python3 -m venv, pip, curl, sha256sum, ftagent deploy.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "packaging" / "install.sh"
TEST_TOOLS = ("trafgen", "netsniff-ng", "tshark", "xdp-tools", "tcpdump")

_SYSTEMCTL = """#!/bin/sh
printf 'systemctl %s\\n' "$*" >>"{log}"
case "$1" in
is-system-running) echo running ;;
is-active) for s in {active}; do [ "$s" = "$3" ] && exit 0; done; exit 3 ;;
esac
exit 0
"""
_APT_GET = """#!/bin/sh
printf 'apt-get %s\\n' "$*" >>"{log}"
"""


@dataclass
class Stubs:
    directory: Path
    active: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.directory / "calls.log"

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        for name, text in (("systemctl", _SYSTEMCTL), ("apt-get", _APT_GET)):
            path = self.directory / name
            path.write_text(text.format(log=self.log, active=shlex.join(self.active) or "''"))
            path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "FTAGENT_DEPLOY_TOKEN"}
        env["PATH"] = f"{self.directory}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(extra)
        return env


def make_stubs(directory: Path, active: list[str] | None = None) -> Stubs:
    stubs = Stubs(directory, list(active or []))
    stubs.write()
    return stubs


def run_installer(
    stubs: Stubs, *args: str, timeout_s: float = 600.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(INSTALLER), *args],
        env=stubs.env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def exec_start(unit: Path) -> list[str]:
    """The unit's ExecStart= as an argv (what systemd would run)."""
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise AssertionError(f"{unit} has no ExecStart=")

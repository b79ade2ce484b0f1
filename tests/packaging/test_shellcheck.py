"""shellcheck on every shell script in the repository (by extension or by shebang)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.capability import require

ROOT = Path(__file__).resolve().parents[2]
SHEBANG_SHELLS = (b"#!/bin/sh", b"#!/bin/bash", b"#!/usr/bin/env bash", b"#!/usr/bin/env sh")


def shell_scripts() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    found = []
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            head = fh.readline()
        if path.suffix in (".sh", ".bash") or head.startswith(SHEBANG_SHELLS):
            found.append(path)
    return sorted(found)


def test_the_repository_has_its_scripts() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    assert {"packaging/install.sh", ".ci/run"} <= names, names


def test_every_shell_script_passes_shellcheck() -> None:
    require(shutil.which("shellcheck") is not None, "shellcheck (Debian package shellcheck)")
    scripts = shell_scripts()
    result = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_installer_is_posix_sh() -> None:
    """The one-liner pipes it into `sh` (dash on Debian): no bash-isms allowed."""
    require(shutil.which("shellcheck") is not None, "shellcheck (Debian package shellcheck)")
    script = ROOT / "packaging" / "install.sh"
    assert script.read_bytes().startswith(b"#!/bin/sh\n")
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "--severity=style", str(script)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
    dash = shutil.which("dash")
    require(dash is not None, "dash")
    assert subprocess.run([str(dash), "-n", str(script)]).returncode == 0

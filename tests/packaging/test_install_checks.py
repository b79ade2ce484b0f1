"""packaging/install.sh fails early, with a clear message and nothing changed, on a system
it does not support: not root, not Debian/Ubuntu, no running systemd; and on bad usage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.capability import require, require_root
from tests.e2e.install_harness import INSTALLER, TEST_TOOLS, Stubs, make_stubs, run_installer


def _nothing_under(prefix: Path) -> None:
    assert not prefix.exists() or list(prefix.rglob("*")) == []


def test_not_root(tmp_path: Path) -> None:
    require_root()  # to become someone else
    require(shutil.which("setpriv") is not None, "setpriv (util-linux)")
    prefix = tmp_path / "p"
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", str(INSTALLER),
         "--prefix", str(prefix)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "must run as root" in done.stderr
    _nothing_under(prefix)


def test_not_debian(tmp_path: Path) -> None:
    """A private mount namespace shows the script a Fedora /etc/os-release."""
    require_root()
    require(shutil.which("unshare") is not None, "unshare (util-linux)")
    fake = tmp_path / "os-release"
    fake.write_text('NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n')
    stubs = make_stubs(tmp_path / "stubs")
    prefix = tmp_path / "p"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind "$1" /etc/os-release && exec sh "$2" --prefix "$3"', "check",
         str(fake), str(INSTALLER), str(prefix)],
        env=stubs.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "unsupported system: 'fedora' (Debian or Ubuntu needed)" in done.stderr
    assert stubs.calls() == []  # not even systemctl was asked
    _nothing_under(prefix)
    # The machine's own file is untouched (the bind mount lived in the namespace only).
    assert "fedora" not in Path("/etc/os-release").read_text()


def test_no_running_systemd(tmp_path: Path) -> None:
    require_root()
    stubs = make_stubs(tmp_path / "stubs")
    offline = stubs.directory / "systemctl"
    offline.write_text(f'#!/bin/sh\necho "systemctl $*" >>"{stubs.log}"\necho offline\nexit 1\n')
    prefix = tmp_path / "p"
    done = run_installer(stubs, "--prefix", str(prefix))
    assert done.returncode == 1
    assert "systemd is not running (state 'offline')" in done.stderr
    assert stubs.calls() == ["systemctl is-system-running"]
    _nothing_under(prefix)


def test_bad_usage_names_the_option(tmp_path: Path) -> None:
    stubs = make_stubs(tmp_path / "stubs")
    for args, message in (
        (("--bogus",), "unknown option: --bogus"),
        (("--prefix",), "--prefix needs a value"),
        (("--prefix", "relative/dir"), "--prefix must be an absolute path"),
    ):
        done = run_installer(stubs, *args)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
    assert stubs.calls() == []


def test_help_lists_the_options() -> None:
    done = subprocess.run(["sh", str(INSTALLER), "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for option in ("--agent-only", "--control-only", "--prefix", "--uninstall", "--purge",
                   "--re-register", "--name", "--ip", "--interface"):  # fmt: skip
        assert option in done.stdout


def _bare_machine(stubs: Stubs) -> None:
    """dpkg-query says nothing is installed; apt-get records its argv and then fails, so
    the run stops right after asking for packages (nothing else happens)."""
    query = stubs.directory / "dpkg-query"
    query.write_text("#!/bin/sh\nexit 1\n")
    apt = stubs.directory / "apt-get"
    apt.write_text(
        f'#!/bin/sh\necho "apt-get $*" >>"{stubs.log}"\n[ "$1" = update ] || exit 100\n'
    )
    for path in (query, apt):
        path.chmod(0o755)


def _asked_for(stubs: Stubs) -> list[str]:
    (install,) = [c for c in stubs.calls() if c.startswith("apt-get install")]
    return install.split("--no-install-recommends", 1)[1].split()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["python3-venv", "python3-bpfcc", "iproute2", "exabgp"]),
        (("--agent-only",), ["python3-venv", "python3-bpfcc", "iproute2"]),
        (("--control-only",), ["python3-venv", "exabgp"]),
    ],
)
def test_a_bare_node_gets_runtime_packages_only(
    tmp_path: Path, args: tuple[str, ...], expected: list[str]
) -> None:
    require_root()
    stubs = make_stubs(tmp_path / "stubs")
    _bare_machine(stubs)
    prefix = tmp_path / "p"
    done = run_installer(stubs, "--prefix", str(prefix), *args)
    assert done.returncode == 100, done.stdout + done.stderr
    asked = _asked_for(stubs)
    headers = [p for p in asked if p.startswith("linux-headers-")]
    assert [p for p in asked if p not in headers] == expected
    assert len(headers) == (1 if "python3-bpfcc" in expected else 0), asked
    for tool in (*TEST_TOOLS, "bpftool"):
        assert not any(tool in p for p in asked), (tool, asked)
    _nothing_under(prefix)


def test_the_makefile_splits_runtime_from_development_packages() -> None:
    text = INSTALLER.parents[1].joinpath("Makefile").read_text()

    def debs(name: str) -> list[str]:
        (line,) = [x for x in text.splitlines() if x.split(":=")[0].strip() == name]
        return line.split(":=", 1)[1].split()

    runtime, dev = debs("RUNTIME_DEBS"), debs("DEV_DEBS")
    assert debs("DEBS") == ["$(RUNTIME_DEBS)", "$(DEV_DEBS)"]
    assert not any(tool in p for p in runtime for tool in TEST_TOOLS), runtime
    assert {"netsniff-ng", "tshark", "xdp-tools", "tcpdump", "shellcheck", "prometheus"} <= set(dev)

"""Kernel-header discovery and the Debian symlink farm, on fake trees (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftagent.bpf import headers
from ftagent.bpf.headers import KernelHeadersError, find_kernel_headers


def fake_debian(src: Path, version: str) -> None:
    common = src / f"linux-headers-{version}-common"
    arch = src / f"linux-headers-{version}-amd64"
    (common / "include/linux").mkdir(parents=True)
    (common / "include/linux/types.h").write_text("common types\n")
    (common / "include/linux/only_common.h").write_text("c\n")
    (common / "arch/x86/include").mkdir(parents=True)
    (arch / "include/linux").mkdir(parents=True)
    (arch / "include/linux/types.h").write_text("arch types\n")  # arch wins
    (arch / "arch/x86/include/generated").mkdir(parents=True)
    (arch / "arch/x86/include/generated/autoconf.h").write_text("gen\n")
    kbuild = src / "kbuild-scripts"
    kbuild.mkdir(exist_ok=True)
    (kbuild / "mod.sh").write_text("s\n")
    (arch / "scripts").symlink_to(kbuild)


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)


def test_builds_merged_farm_arch_overriding_common(tmp_path: Path) -> None:
    src, cache = tmp_path / "src", tmp_path / "cache"
    fake_debian(src, "6.1.0-99")
    tree = find_kernel_headers(cache, src, release="6.1.0-99-amd64-nomodules")
    assert tree == cache / "6.1.0-99-amd64"
    assert (tree / "include/linux/types.h").read_text() == "arch types\n"
    assert (tree / "include/linux/only_common.h").read_text() == "c\n"
    assert (tree / "arch/x86/include/generated/autoconf.h").is_symlink()
    assert (tree / "scripts/mod.sh").read_text() == "s\n"
    # Reused on the next call (nothing rebuilt).
    marker = tree / ".ftagent-complete"
    mtime = marker.stat().st_mtime_ns
    assert find_kernel_headers(cache, src, release="x") == tree
    assert marker.stat().st_mtime_ns == mtime


def test_prefers_exact_release_then_newest(tmp_path: Path) -> None:
    src, cache = tmp_path / "src", tmp_path / "cache"
    fake_debian(src, "6.1.0-9")
    fake_debian(src, "6.1.0-56")
    assert find_kernel_headers(cache, src, release="6.1.0-9-amd64").name == "6.1.0-9-amd64"
    assert find_kernel_headers(cache, src, release="7.0").name == "6.1.0-56-amd64"


def test_env_tree_wins_when_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "k"
    (tree / "include/linux").mkdir(parents=True)
    (tree / "arch").mkdir()
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(tree))
    assert find_kernel_headers(tmp_path / "c", tmp_path / "none") == tree


def test_clear_error_when_nothing_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers, "_usable", lambda p: False)
    (tmp_path / "src").mkdir()
    with pytest.raises(KernelHeadersError, match="linux-headers-<ver>-common"):
        find_kernel_headers(tmp_path / "cache", tmp_path / "src", release="9.9.9-test")


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    fake_debian(src, "6.1.0-1")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(KernelHeadersError, match="could not build"):
        find_kernel_headers(blocker / "cache", src, release="6.1.0-1-amd64")

"""Find or build the kernel-header tree bcc compiles against.

Order: $BCC_KERNEL_SOURCE if it holds a usable tree; /lib/modules/<release>/build; else a
merged symlink farm of Debian's split header packages
(/usr/src/linux-headers-<ver>-common + /usr/src/linux-headers-<ver>-<arch>), built once in
a cache directory (default /var/cache/ftagent/kernel-headers/<ver>-<arch>) and reused.
Anything else raises `KernelHeadersError` saying what was looked for.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
from pathlib import Path

DEFAULT_CACHE_DIR = Path("/var/cache/ftagent/kernel-headers")
SRC_DIR = Path("/usr/src")
_COMPLETE_MARK = ".ftagent-complete"


class KernelHeadersError(RuntimeError):
    """No kernel headers usable by bcc could be found or built."""


def _usable(tree: Path) -> bool:
    # bcc needs the generated headers (arch/x86/include/generated) and the uapi tree.
    return (tree / "include" / "linux").is_dir() and (tree / "arch").is_dir()


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def _debian_pairs(src_dir: Path) -> list[tuple[str, Path, Path]]:
    """(version-arch, common dir, arch dir) for every complete Debian header pair."""
    pairs: list[tuple[str, Path, Path]] = []
    for common in src_dir.glob("linux-headers-*-common"):
        version = common.name[len("linux-headers-") : -len("-common")]
        for arch_dir in src_dir.glob(f"linux-headers-{version}-*"):
            if arch_dir == common or not arch_dir.is_dir():
                continue
            flavour = arch_dir.name[len(f"linux-headers-{version}-") :]
            if flavour.endswith("common"):
                continue
            pairs.append((f"{version}-{flavour}", common, arch_dir))
    return pairs


def _link_tree(src: Path, dst: Path) -> None:
    """`cp -rs src/. dst/` with overwrite: directories created, files symlinked."""
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        target_dir = dst / rel
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in list(dirs):
            path = Path(root) / name
            if path.is_symlink():
                # A symlinked directory (e.g. scripts -> kbuild): link its real target.
                dirs.remove(name)
                link = target_dir / name
                if link.is_symlink() or link.exists():
                    if link.is_dir() and not link.is_symlink():
                        shutil.rmtree(link)
                    else:
                        link.unlink()
                link.symlink_to(path.resolve())
        for name in files:
            link = target_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to((Path(root) / name).resolve())


def build_farm(common: Path, arch: Path, dest: Path) -> Path:
    """Build the merged tree at `dest` (atomically: built aside, then renamed)."""
    if (dest / _COMPLETE_MARK).exists():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as exc:
        raise KernelHeadersError(f"could not build kernel-header tree in {dest}: {exc}") from exc
    try:
        _link_tree(common, tmp)
        _link_tree(arch, tmp)
        (tmp / _COMPLETE_MARK).write_text(f"{common}\n{arch}\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if (dest / _COMPLETE_MARK).exists():  # another process won the race
            return dest
        raise KernelHeadersError(f"could not build kernel-header tree in {dest}: {exc}") from exc
    return dest


def find_kernel_headers(
    cache_dir: Path = DEFAULT_CACHE_DIR,
    src_dir: Path = SRC_DIR,
    release: str | None = None,
) -> Path:
    """Return a kernel-header tree for bcc, building the Debian symlink farm if needed."""
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env and _usable(Path(env)):
        return Path(env)
    release = release or platform.release()
    build = Path("/lib/modules") / release / "build"
    if _usable(build):
        return build
    pairs = _debian_pairs(src_dir)
    if not pairs:
        raise KernelHeadersError(
            f"no kernel headers for {release}: {build} is missing and {src_dir} holds no "
            "linux-headers-<ver>-common + linux-headers-<ver>-<arch> pair "
            "(install linux-headers-amd64, or set BCC_KERNEL_SOURCE to a kernel tree)"
        )
    exact = [p for p in pairs if p[0] == release]
    name, common, arch = exact[0] if exact else max(pairs, key=lambda p: _version_key(p[0]))
    return build_farm(common, arch, cache_dir / name)


def use_kernel_headers(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Find/build the tree and point bcc at it (BCC_KERNEL_SOURCE) for this process."""
    tree = find_kernel_headers(cache_dir)
    os.environ["BCC_KERNEL_SOURCE"] = str(tree)
    return tree

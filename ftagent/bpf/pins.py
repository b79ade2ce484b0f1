"""One interface's pin directory under bpffs: what it holds, whether it can be used.

    /sys/fs/bpf/ftagent/<ifname>/      0700; flock()ed by the agent running on <ifname>
        manifest                       a frozen one-element array map: the Manifest (JSON)
        prog                           xdp_main
        egress                         tc_egress_learn (built with the socket guard only)
        stats, config, top_v4, ...     the maps (Manifest.maps)

bpffs holds only BPF objects, so the description of what was built (source hash, build
options, every map's layout) is itself a map, pinned last by the compiling process: a
directory without a manifest is a build that did not finish. `check()` says whether the
pins are exactly the build the agent wants (same hash, every map there with the size and
type the manifest gives); anything else is removed whole by `clear()` and built again.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import fcntl
import os
import shutil
from pathlib import Path

import msgspec

from ftagent.bpf import libbpf
from ftagent.bpf.layout import FORMAT, MapLayout

BPFFS = Path("/sys/fs/bpf")
DEFAULT_PIN_ROOT = BPFFS / "ftagent"
MANIFEST = "manifest"
XDP_PROG = "prog"
EGRESS_PROG = "egress"


class PinError(RuntimeError):
    """The pin directory cannot be set up or read."""


class LockedError(PinError):
    """Another process (a running agent) holds the interface's pin directory."""


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    source_hash: str
    top_sources_size: int
    perf_buffer: bool
    socket_guard: bool
    maps: tuple[MapLayout, ...]
    egress_error: str = ""  # why tc_egress_learn was not loaded ("" when it was, or unbuilt)

    def layout(self, name: str) -> MapLayout:
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(name)


def pin_dir(interface: str, pin_root: Path = DEFAULT_PIN_ROOT) -> Path:
    if not interface or "/" in interface or interface in (".", ".."):
        raise ValueError(f"bad interface name {interface!r}")
    return pin_root / interface


def _libc() -> ct.CDLL:
    return ct.CDLL(None, use_errno=True)


def ensure_bpffs() -> None:
    """Mount bpffs on /sys/fs/bpf unless it is mounted already."""
    if os.path.ismount(BPFFS):
        return
    BPFFS.mkdir(parents=True, exist_ok=True)
    if _libc().mount(b"bpf", str(BPFFS).encode(), b"bpf", 0, None) != 0:
        err = ct.get_errno()
        raise PinError(f"cannot mount bpffs on {BPFFS}: {os.strerror(err)}")


def lock(path: Path) -> int:
    """Create and flock `path` for this process's lifetime (the fd); LockedError if taken.

    The kernel drops the lock when its holder dies however it dies, so a lock that can be
    taken means no live agent owns what is pinned there."""
    if path.is_relative_to(BPFFS):
        ensure_bpffs()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # whoever can open these pins can add or remove drop rules
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedError(f"another ftagent is attached to {path.name} (it holds {path})"
                          ) from None
    return fd


def is_locked(path: Path) -> bool:
    """Whether a live process holds `path`'s lock (checked without keeping it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may have taken
    return False


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Pin the manifest map (last: its presence says the build finished)."""
    data = msgspec.json.encode(manifest)
    fd = libbpf.map_create(libbpf.BPF_MAP_TYPE_ARRAY, "ft_manifest", 4, len(data), 1)
    try:
        buf = ct.create_string_buffer(data, len(data))
        libbpf.map_update(fd, ct.c_uint32(0), buf)
        libbpf.map_freeze(fd)
        libbpf.obj_pin(fd, path / MANIFEST)
    finally:
        os.close(fd)


def read_manifest(path: Path) -> Manifest | None:
    """The manifest pinned in `path`; None when there is none or it cannot be read as one
    (an older format, a half-finished build, something else's pin)."""
    try:
        fd = libbpf.obj_get(path / MANIFEST)
    except OSError:
        return None
    try:
        size = int(libbpf.fdinfo(fd).get("value_size", "0"))
        buf = ct.create_string_buffer(size)
        if size <= 0 or not libbpf.map_lookup(fd, ct.c_uint32(0), buf):
            return None
        manifest = msgspec.json.decode(buf.raw, type=Manifest)
    except (OSError, msgspec.DecodeError, ValueError):
        return None
    finally:
        os.close(fd)
    return manifest if manifest.format == FORMAT else None


def check(path: Path, manifest: Manifest | None, want_hash: str) -> str:
    """'' when the pins in `path` are the build `want_hash` names, complete and as
    described; otherwise why not (the caller rebuilds them whole)."""
    if manifest is None:
        return "no manifest"
    if manifest.source_hash != want_hash:
        return f"built from other sources ({manifest.source_hash[:12]})"
    wanted = [XDP_PROG] + ([EGRESS_PROG] if manifest.socket_guard and not manifest.egress_error
                           else [])
    for name in wanted:
        if not (path / name).exists():
            return f"program {name} missing"
    for layout in manifest.maps:
        try:
            fd = libbpf.obj_get(path / layout.name)
        except OSError:
            return f"map {layout.name} missing"
        try:
            info = libbpf.fdinfo(fd)
        finally:
            os.close(fd)
        got = (int(info.get("map_type", -1)), int(info.get("key_size", -1)),
               int(info.get("value_size", -1)), int(info.get("max_entries", -1)))
        want = (layout.map_type, layout.key_size, layout.value_size, layout.max_entries)
        if got != want:
            return f"map {layout.name} is {got} (type, key, value, entries), manifest {want}"
    return ""


def prog_id_at(path: Path) -> int:
    """Id of the program pinned at `path` (0: none)."""
    try:
        fd = libbpf.obj_get(path)
    except OSError:
        return 0
    try:
        return int(libbpf.fdinfo(fd).get("prog_id", "0"))
    finally:
        os.close(fd)


def clear(path: Path) -> None:
    """Remove every pin in `path` (the directory stays: it carries the lock)."""
    for old in path.iterdir():
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()


def remove(path: Path) -> None:
    """Remove the pins and the directory (and the root when no other interface is left)."""
    if path.exists():
        clear(path)
        path.rmdir()
    with contextlib.suppress(OSError):  # another interface's pins are there, or it is gone
        path.parent.rmdir()

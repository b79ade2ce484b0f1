"""Load the XDP data path on one interface: `XdpDatapath` implements `ftagent.datapath.Datapath`.

    dp = XdpDatapath.open("eth0", mode="auto", top_sources_size=16384, sample_rate=0,
                          src_insert_one_in=8, pin_dir=Path("/sys/fs/bpf/ftagent"))
    ...
    dp.close()            # or `with XdpDatapath.open(...) as dp:`

- mode: "auto" tries native (driver) XDP and falls back to generic (skb) mode;
  "native" or "generic" force one. `attach_info.mode` says which one is in use.
- A second attach to an interface that already has an XDP program (ours or anyone's)
  is refused with `AlreadyAttachedError`.
- The maps are pinned under <pin_dir>/<ifname>/ (bpffs is mounted if needed) so that
  `ftagent rules|block|unblock` can act on the running agent; close() unpins them.
- close() detaches; it also runs at interpreter exit, and on SIGTERM/SIGINT when
  handle_signals=True (handlers are installed when open() is called from the main
  thread; a handler that was there before is called afterwards, the default ones exit).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes as ct
import ctypes.util
import errno
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

from ftagent.bpf.headers import DEFAULT_CACHE_DIR
from ftagent.bpf.maps import DatapathMaps
from ftagent.bpf.program import DEFAULT_TOP_SOURCES_SIZE, compile_xdp, ringbuf_supported
from ftagent.datapath import (
    AttachInfo,
    Counters,
    IPNetwork,
    Rule,
    RuleSpec,
    Sample,
    SourceStat,
)

BPFFS = Path("/sys/fs/bpf")
DEFAULT_PIN_ROOT = BPFFS / "ftagent"
# Maps pinned for the command line (the ring buffer stays private to the agent).
PINNED_MAPS = (
    "stats",
    "config",
    "top_v4",
    "top_v6",
    "allow_v4",
    "allow_v6",
    "rsrc_v4",
    "rsrc_v6",
    "rpfx_v4",
    "rpfx_v6",
    "rsig",
    "rule_stats",
)
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2

Mode = Literal["auto", "native", "generic"]


class DatapathError(RuntimeError):
    """The data path could not be set up."""


class AlreadyAttachedError(DatapathError):
    """The interface already carries an XDP program."""


def xdp_prog_id(ifindex: int) -> int:
    """Id of the XDP program attached to `ifindex` in this network namespace (0: none)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.get_links(ifindex)
    if not links:
        return 0
    xdp = links[0].get_attr("IFLA_XDP")
    if xdp is None:
        return 0
    return int(xdp.get_attr("IFLA_XDP_PROG_ID") or 0)


def ifindex_of(interface: str) -> int:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
    if not found:
        raise DatapathError(f"no interface named {interface!r} in this network namespace")
    return int(found[0])


def _link_id(ifindex: int) -> tuple[int, int]:
    return (os.stat("/proc/self/ns/net").st_ino, ifindex)


def _libc() -> Any:
    return ct.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def ensure_bpffs() -> None:
    """Mount bpffs on /sys/fs/bpf unless it is mounted already."""
    if os.path.ismount(BPFFS):
        return
    BPFFS.mkdir(parents=True, exist_ok=True)
    if _libc().mount(b"bpf", str(BPFFS).encode(), b"bpf", 0, None) != 0:
        err = ct.get_errno()
        raise DatapathError(f"cannot mount bpffs on {BPFFS}: {os.strerror(err)}")


def pin_map(fd: int, path: Path) -> None:
    from bcc.libbcc import lib

    if lib.bpf_obj_pin(fd, str(path).encode()) != 0:
        err = ct.get_errno()
        raise DatapathError(f"cannot pin map at {path}: {os.strerror(err) if err else 'failed'}")


_open_lock = threading.Lock()
_open: dict[tuple[int, int], XdpDatapath] = {}  # (netns inode, ifindex) -> open data path
_handlers_installed = False
_previous: dict[int, Any] = {}


def _close_all() -> None:
    for dp in list(_open.values()):
        with contextlib.suppress(Exception):
            dp.close()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _close_all()
    prev = _previous.get(signum)
    if callable(prev):
        prev(signum, frame)
        return
    if prev == signal.SIG_IGN:
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    sys.exit(128 + signum)


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_close_all)
        _atexit_registered = True


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            _previous[sig] = signal.getsignal(sig)
            signal.signal(sig, _on_signal)
    _handlers_installed = True


class XdpDatapath:
    """The XDP program attached to one interface, with typed access to its maps."""

    def __init__(self, bpf: Any, maps: DatapathMaps, info: AttachInfo, flags: int,
                 pin_path: Path | None) -> None:
        self._bpf = bpf
        self._maps = maps
        self._info = info
        self._flags = flags
        self._pin_path = pin_path
        self._closed = False
        self._link = (0, info.ifindex)

    @classmethod
    def open(
        cls,
        interface: str,
        *,
        mode: Mode = "auto",
        top_sources_size: int = DEFAULT_TOP_SOURCES_SIZE,
        sample_rate: int = 0,
        src_insert_one_in: int = 8,
        pin_dir: Path | None = DEFAULT_PIN_ROOT,
        perf_buffer: bool | None = None,
        handle_signals: bool = True,
        header_cache_dir: Path = DEFAULT_CACHE_DIR,
    ) -> XdpDatapath:
        """Compile, load, attach to `interface` and pin the maps (pin_dir=None: no pins)."""
        from bcc import BPF

        if mode not in ("auto", "native", "generic"):
            raise DatapathError(f"mode must be auto, native or generic, got {mode!r}")
        ifindex = ifindex_of(interface)
        with _open_lock:
            if _link_id(ifindex) in _open or xdp_prog_id(ifindex):
                raise AlreadyAttachedError(
                    f"{interface} already has an XDP program attached (prog id "
                    f"{xdp_prog_id(ifindex)}); refusing a second attach"
                )
            use_perf = (not ringbuf_supported()) if perf_buffer is None else perf_buffer
            bpf = compile_xdp(top_sources_size=top_sources_size, perf_buffer=use_perf,
                              header_cache_dir=header_cache_dir)
            try:
                fn = bpf.load_func(b"xdp_main", BPF.XDP)
            except Exception as exc:
                bpf.cleanup()
                raise DatapathError(f"the kernel rejected the XDP program: {exc}") from exc
            maps = DatapathMaps(bpf, perf_buffer=use_perf)
            maps.set_sample_rate(sample_rate)
            maps.set_source_insert_rate(src_insert_one_in)
            attempts = {"auto": ("native", "generic"), "native": ("native",),
                        "generic": ("generic",)}[mode]
            errors: list[str] = []
            used: tuple[str, int] | None = None
            for attempt in attempts:
                flags = XDP_FLAGS_UPDATE_IF_NOEXIST | (
                    XDP_FLAGS_DRV_MODE if attempt == "native" else XDP_FLAGS_SKB_MODE)
                try:
                    BPF.attach_xdp(interface.encode(), fn, flags)
                except Exception as exc:
                    errors.append(f"{attempt}: {exc}")
                    continue
                used = (attempt, flags)
                break
            if used is None:
                bpf.cleanup()
                raise DatapathError(f"cannot attach XDP to {interface}: " + "; ".join(errors))
            prog_id = xdp_prog_id(ifindex)
            extra = {"fallback": errors[0]} if errors else {}
            extra["samples"] = "perf_buffer" if use_perf else "ring_buffer"
            info = AttachInfo(interface=interface, ifindex=ifindex,
                              mode="native" if used[0] == "native" else "generic",
                              prog_id=prog_id, extra=extra)
            dp = cls(bpf, maps, info, used[1], None)
            self_id = _link_id(ifindex)
            dp._link = self_id
            _open[self_id] = dp
        try:
            if pin_dir is not None:
                dp._pin(pin_dir / interface)
                info.extra["pin_dir"] = str(pin_dir / interface)
        except Exception:
            dp.close()
            raise
        _register_atexit()  # detach at interpreter exit in every case
        if handle_signals:
            _install_handlers()
        return dp

    def _pin(self, path: Path) -> None:
        ensure_bpffs()
        if path.exists():
            # The interface has no XDP program (checked in open), so these pins are left
            # over from an agent that died: replace them.
            shutil.rmtree(path)
        # Root-only: anyone who can open these pins can add or remove drop rules.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
        self._pin_path = path
        for name in PINNED_MAPS:
            pin_map(self._bpf[name.encode()].get_fd(), path / name)

    def _unpin(self) -> None:
        path = self._pin_path
        if path is None:
            return
        for name in PINNED_MAPS:
            with contextlib.suppress(FileNotFoundError):
                (path / name).unlink()
        try:
            path.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                raise
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only succeeds when no other interface is pinned
        self._pin_path = None

    # ---------- Datapath ----------

    @property
    def attach_info(self) -> AttachInfo:
        return self._info

    @property
    def maps(self) -> DatapathMaps:
        return self._maps

    @property
    def bpf(self) -> Any:
        """The bcc.BPF object (tests and benchmarks use its function fd)."""
        return self._bpf

    def read_counters(self) -> Counters:
        return self._maps.read_counters()

    def top_sources(self, limit: int) -> list[SourceStat]:
        return self._maps.top_sources(limit)

    def age_sources(self, older_than_ns: int) -> int:
        return self._maps.age_sources(older_than_ns)

    def add_rule(self, spec: RuleSpec, ttl_s: float) -> Rule:
        return self._maps.add_rule(spec, ttl_s)

    def remove_rule(self, spec: RuleSpec) -> bool:
        return self._maps.remove_rule(spec)

    def list_rules(self) -> list[Rule]:
        return self._maps.list_rules()

    def set_allowlist(self, networks: list[IPNetwork]) -> None:
        self._maps.set_allowlist(networks)

    def set_sample_rate(self, one_in: int) -> None:
        self._maps.set_sample_rate(one_in)

    def poll_samples(self, max_items: int = 4096) -> list[Sample]:
        return self._maps.poll_samples(max_items)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        from bcc import BPF

        try:
            # Detach only if the program on the link is still ours. The link may be gone
            # (its namespace deleted), which detached the program already.
            with contextlib.suppress(Exception):
                current = xdp_prog_id(self._info.ifindex)
                if current and current == self._info.prog_id:
                    BPF.remove_xdp(self._info.interface.encode(),
                                   self._flags & ~XDP_FLAGS_UPDATE_IF_NOEXIST)
        finally:
            with contextlib.suppress(Exception):
                self._unpin()
            with _open_lock:
                if _open.get(self._link) is self:
                    del _open[self._link]
            with contextlib.suppress(Exception):
                self._bpf.cleanup()

    def __enter__(self) -> XdpDatapath:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

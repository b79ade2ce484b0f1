"""Load the XDP data path on one interface: `XdpDatapath` implements `ftagent.datapath.Datapath`.

    dp = XdpDatapath.open("eth0", mode="auto", top_sources_size=16384, sample_rate=0,
                          src_insert_one_in=8, pin_dir=Path("/sys/fs/bpf/ftagent"))
    ...
    dp.close()            # or `with XdpDatapath.open(...) as dp:`

- mode: "auto" tries native (driver) XDP and falls back to generic (skb) mode;
  "native" or "generic" force one. `attach_info.mode` says which one is in use.
- A second attach to an interface that already has an XDP program (ours or anyone's)
  is refused with `AlreadyAttachedError`, with one exception: the program a dead agent
  left behind (SIGKILL, OOM kill, power cut of the process: no close() ran). While it
  runs, an agent holds an flock on its pin directory <pin_dir>/<ifname>/, and pins its
  program there as `prog`; when open() can take that lock and the program on the link is
  the pinned one, it replaces it atomically in the same XDP mode (never two programs, no
  moment without one) and reports the old id as attach_info.extra["replaced_prog_id"].
- The maps are pinned under <pin_dir>/<ifname>/ (bpffs is mounted if needed) so that
  `ftagent rules|block|unblock` can act on the running agent; close() unpins them.
- The socket-aware rules (RuleSpec.spare) need BPF helpers that older kernels lack
  (ftagent.bpf.features.SOCKET_HELPERS): when one is missing the program is built
  without them, a warning names it, `attach_info.missing_helpers` lists it (the agent's
  /health can show it), and rules with spare != "none" are refused, so the agent keeps
  today's plain rules. `pretend_missing_helpers` simulates that on a kernel that has them.
- learn_one_in: known sources (RuleSpec.spare_known) are learned by looking 1 passed
  TCP (non-SYN) / UDP packet in N up in the socket tables; 0 turns learning off.
- egress_learn_one_in: the TC egress program (ftagent.bpf.egress) marks the peer of 1 UDP
  datagram in N the node sends as known ("exchanged UDP both ways"; a UDP service's
  bound socket never shows its clients to the lookup above); 0: not attached. When the
  kernel refuses it, XDP runs without it and attach_info.udp_egress_error says why.
- newcomer_source_pps: under a known-sources rule, a source first seen during the attack
  that sends again passes this many packets per second of its own (0: off).

Why one module over 400 lines: compiling, attaching, pinning and the dead-agent takeover
share one lifecycle (the flock, the pins and the attached program are created and undone
together in open()/close()); splitting them would spread that ordering over files.
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
import fcntl
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Collection
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

from ftagent.bpf.egress import EgressError, attach_egress, detach_egress
from ftagent.bpf.features import missing_socket_helpers
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

log = logging.getLogger(__name__)

BPFFS = Path("/sys/fs/bpf")
DEFAULT_PIN_ROOT = BPFFS / "ftagent"
# Maps pinned for the command line (the ring buffer stays private to the agent).
PINNED_MAPS = (
    "stats",
    "config",
    "top_v4",
    "top_v6",
    "top_cache_v4",
    "top_cache_v6",
    "allow_v4",
    "allow_v6",
    "rsrc_v4",
    "rsrc_v6",
    "rpfx_v4",
    "rpfx_v6",
    "rsig",
    "rule_stats",
    "frag_spared",
    "known_v4",
    "known_v6",
)
# Known sources: verify 1 passed TCP/UDP packet in this many (a socket lookup each).
DEFAULT_LEARN_ONE_IN = 64
# Known sources from egress UDP: 1 datagram the node sends in this many (per CPU).
DEFAULT_EGRESS_LEARN_ONE_IN = 4
# Second chance: what a repeating newcomer may pass per second under a known-sources rule.
DEFAULT_NEWCOMER_SOURCE_PPS = 100
PINNED_PROG = "prog"  # the attached program, so a restart can recognise its own
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
# IFLA_XDP_ATTACHED values
XDP_ATTACHED_DRV = 1
XDP_ATTACHED_SKB = 2
_ATTACHED_NAMES = {"none": 0, "xdp": 1, "xdpdrv": 1, "xdpgeneric": 2, "xdpoffload": 3,
                   "xdpmulti": 4}

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


def xdp_attached_mode(ifindex: int) -> int:
    """IFLA_XDP_ATTACHED of `ifindex` (0 none, 1 driver, 2 generic/skb, 3 hw, 4 several)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.get_links(ifindex)
    xdp = links[0].get_attr("IFLA_XDP") if links else None
    value = xdp.get_attr("IFLA_XDP_ATTACHED") if xdp is not None else None
    if isinstance(value, str):  # pyroute2 names the values
        return _ATTACHED_NAMES.get(value, 0)
    return int(value or 0)


def pinned_prog_id(path: Path) -> int:
    """Id of the program pinned at `path` (0: none)."""
    from bcc.libbcc import lib

    if not path.exists():
        return 0
    fd = lib.bpf_obj_get(str(path).encode())
    if fd < 0:
        return 0
    try:
        for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "prog_id":
                return int(value)
        return 0
    finally:
        os.close(fd)


def _lock_pin_dir(path: Path) -> int:
    """flock the pin directory for this process's lifetime; AlreadyAttachedError if taken.

    The kernel drops the lock when the holder dies however it dies, so a lock that can be
    taken means no live agent owns what is pinned here."""
    ensure_bpffs()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyAttachedError(
            f"another ftagent is attached to {path.name} (it holds {path})"
        ) from None
    return fd


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
        self._lock_fd = -1  # flock on the pin directory while attached (see open)
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
        pretend_missing_helpers: Collection[str] = (),
        learn_one_in: int = DEFAULT_LEARN_ONE_IN,
        egress_learn_one_in: int = DEFAULT_EGRESS_LEARN_ONE_IN,
        newcomer_source_pps: int = DEFAULT_NEWCOMER_SOURCE_PPS,
    ) -> XdpDatapath:
        """Compile, load, attach to `interface` and pin the maps (pin_dir=None: no pins)."""
        if mode not in ("auto", "native", "generic"):
            raise DatapathError(f"mode must be auto, native or generic, got {mode!r}")
        ifindex = ifindex_of(interface)
        with _open_lock:
            if _link_id(ifindex) in _open:
                raise AlreadyAttachedError(f"{interface} is attached by this process already")
            lock_fd = _lock_pin_dir(pin_dir / interface) if pin_dir is not None else -1
            try:
                return cls._open_locked(
                    interface, ifindex, mode, top_sources_size, sample_rate,
                    src_insert_one_in, pin_dir, perf_buffer, handle_signals,
                    header_cache_dir, lock_fd, tuple(pretend_missing_helpers), learn_one_in,
                    egress_learn_one_in, newcomer_source_pps,
                )
            except BaseException:
                if lock_fd >= 0:
                    os.close(lock_fd)
                raise

    @classmethod
    def _open_locked(
        cls, interface: str, ifindex: int, mode: Mode, top_sources_size: int,
        sample_rate: int, src_insert_one_in: int, pin_dir: Path | None,
        perf_buffer: bool | None, handle_signals: bool, header_cache_dir: Path, lock_fd: int,
        pretend_missing_helpers: tuple[str, ...] = (),
        learn_one_in: int = 0,
        egress_learn_one_in: int = 0,
        newcomer_source_pps: int = 0,
    ) -> XdpDatapath:
        from bcc import BPF

        old_id = xdp_prog_id(ifindex)
        stale_mode = 0
        if old_id:
            ours = pin_dir is not None and old_id == pinned_prog_id(
                pin_dir / interface / PINNED_PROG)
            if not ours:
                raise AlreadyAttachedError(
                    f"{interface} already has an XDP program attached (prog id "
                    f"{old_id}); refusing a second attach"
                )
            # Left by an agent that died without detaching (we hold its lock now).
            stale_mode = xdp_attached_mode(ifindex)
        use_perf = (not ringbuf_supported()) if perf_buffer is None else perf_buffer
        missing = missing_socket_helpers(pretend_missing_helpers)
        if missing:
            log.warning(
                "%s: this kernel lacks %s: socket-aware rules (spare) are off, plain rules "
                "only", interface, ", ".join(missing))
        bpf = compile_xdp(top_sources_size=top_sources_size, perf_buffer=use_perf,
                          header_cache_dir=header_cache_dir, socket_guard=not missing)
        try:
            fn = bpf.load_func(b"xdp_main", BPF.XDP)
        except Exception as exc:
            bpf.cleanup()
            raise DatapathError(f"the kernel rejected the XDP program: {exc}") from exc
        maps = DatapathMaps(bpf, perf_buffer=use_perf, socket_guard=not missing)
        maps.set_sample_rate(sample_rate)
        maps.set_source_insert_rate(src_insert_one_in)
        maps.set_learn_rate(0 if missing else learn_one_in)
        maps.set_newcomer_source_pps(newcomer_source_pps)
        attempts = {"auto": ("native", "generic"), "native": ("native",),
                    "generic": ("generic",)}[mode]
        replace = False
        if stale_mode in (XDP_ATTACHED_DRV, XDP_ATTACHED_SKB):
            old_mode = "native" if stale_mode == XDP_ATTACHED_DRV else "generic"
            if old_mode in attempts:
                # Same mode, without UPDATE_IF_NOEXIST: the kernel swaps the program
                # atomically, so traffic never meets no program or two.
                attempts, replace = (old_mode,), True
            else:  # another mode was asked for: take the old program off first
                BPF.remove_xdp(interface.encode(), XDP_FLAGS_DRV_MODE
                               if old_mode == "native" else XDP_FLAGS_SKB_MODE)
        elif stale_mode:
            raise AlreadyAttachedError(
                f"{interface}: the stale program {old_id} is attached in a mode "
                f"({stale_mode}) this loader does not replace")
        errors: list[str] = []
        used: tuple[str, int] | None = None
        for attempt in attempts:
            flags = (0 if replace else XDP_FLAGS_UPDATE_IF_NOEXIST) | (
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
        extra["socket_guard"] = "off: kernel lacks " + ", ".join(missing) if missing else "on"
        if old_id:
            extra["replaced_prog_id"] = str(old_id)
        info = AttachInfo(interface=interface, ifindex=ifindex,
                          mode="native" if used[0] == "native" else "generic",
                          prog_id=prog_id, extra=extra, missing_helpers=missing)
        dp = cls(bpf, maps, info, used[1], None)
        dp._lock_fd = lock_fd
        self_id = _link_id(ifindex)
        dp._link = self_id
        _open[self_id] = dp
        try:
            dp._attach_egress(egress_learn_one_in)
            if pin_dir is not None:
                dp._pin(pin_dir / interface, fn.fd)
                info.extra["pin_dir"] = str(pin_dir / interface)
        except Exception:
            dp._lock_fd = -1  # open() releases the lock it took
            dp.close()
            raise
        _register_atexit()  # detach at interpreter exit in every case
        if handle_signals:
            _install_handlers()
        return dp

    def _attach_egress(self, one_in: int) -> None:
        """Put tc_egress_learn on the interface when asked for (and the socket guard is
        on: only its rules use known sources); a kernel refusal is logged and kept in
        attach_info.udp_egress_error (the agent's /health warns), XDP runs on."""
        if self._info.missing_helpers or not one_in:
            return
        try:
            attach_egress(self._bpf, self._info.ifindex)
        except EgressError as exc:
            log.warning("%s: UDP egress learning off: %s", self._info.interface, exc)
            self._info.udp_egress_error = str(exc)
            return
        self._info.udp_egress_learning = True  # close() removes it
        self._maps.set_egress_learn_rate(one_in)

    def _pin(self, path: Path, prog_fd: int) -> None:
        # We hold the directory's lock (open), so whatever is pinned here is left over from
        # an agent that died: replace it. The directory itself stays: it carries the lock.
        # Root-only: anyone who can open these pins can add or remove drop rules.
        path.chmod(0o700)
        for old in path.iterdir():
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        self._pin_path = path
        for name in PINNED_MAPS:
            pin_map(self._bpf[name.encode()].get_fd(), path / name)
        pin_map(prog_fd, path / PINNED_PROG)

    def _unpin(self) -> None:
        path = self._pin_path
        if path is None:
            return
        for name in (*PINNED_MAPS, PINNED_PROG):
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
            if self._info.udp_egress_learning:
                with contextlib.suppress(Exception):
                    detach_egress(self._info.ifindex)
            with contextlib.suppress(Exception):
                self._unpin()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # after the unpin: the next agent finds it clean
                self._lock_fd = -1
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

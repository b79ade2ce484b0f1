"""The XDP data path on one interface: `XdpDatapath` implements `ftagent.datapath.Datapath`.

    dp = XdpDatapath.open("eth0", LoadOptions(mode="auto"), Settings(sample_rate=0))
    ...
    dp.close()            # or `with XdpDatapath.open(...) as dp:`

Start: the interface's pin directory (<pin_root>/<ifname>/, ftagent.bpf.pins) is locked
for the agent's lifetime. When it holds the build this agent wants (same source hash,
every map as its manifest says), it is used as it is: nothing compiles, the rules in its
maps are in force again at once (still expiring by TTL in the kernel), its counters go
on. Otherwise it is emptied and a short-lived process (ftagent.bpf.compile) builds and
pins a new one, so bcc and LLVM never live in this process. Then the pinned program is
attached by fd:
- mode "auto" tries native (driver) XDP and falls back to generic (skb); "native" or
  "generic" force one. `attach_info.mode` says which one is in use.
- A program already on the interface is refused (`AlreadyAttachedError`) unless it is
  the one pinned here: a dead agent's (SIGKILL, OOM kill: no close() ran). If its build
  is the one wanted, it is adopted as it is (never detached); if not, the new program
  replaces it in one step in the same mode (never two programs, no moment without one)
  and attach_info.extra["replaced_prog_id"] names the old one.
- The socket-aware rules (RuleSpec.spare) need BPF helpers that older kernels lack
  (ftagent.bpf.features): without one, the program is built without them, a warning
  names it, `attach_info.missing_helpers` lists it and such rules are refused.
- The TC egress program (ftagent.bpf.egress) goes on the interface too when asked
  (Settings.egress_learn_one_in); a kernel refusal leaves XDP running and is kept in
  attach_info.udp_egress_error.

close() detaches both programs. It removes the pins too, unless LoadOptions.keep_pins
(what `ftagent run` sets, so that a restart finds them). Signals are the caller's: this
module installs no handler and no atexit hook.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from ftagent.bpf import compile as compiler
from ftagent.bpf import libbpf, pins, xdp
from ftagent.bpf.egress import EgressError, attach_egress, detach_egress
from ftagent.bpf.features import missing_socket_helpers
from ftagent.bpf.headers import DEFAULT_CACHE_DIR
from ftagent.bpf.layout import FORMAT, LayoutError
from ftagent.bpf.maps import DatapathMaps
from ftagent.bpf.pins import DEFAULT_PIN_ROOT
from ftagent.bpf.program import DEFAULT_TOP_SOURCES_SIZE, BuildOptions, source_hash
from ftagent.bpf.tables import Tables
from ftagent.bpf.xdp import Mode
from ftagent.datapath import (
    AttachInfo,
    Counters,
    IPNetwork,
    Rule,
    RuleSpec,
    Sample,
    SourceStat,
    Wake,
)

log = logging.getLogger(__name__)

# Known sources: verify 1 passed TCP/UDP packet in this many (a socket lookup each).
DEFAULT_LEARN_ONE_IN = 64
# Known sources from egress UDP: 1 datagram the node sends in this many (per CPU).
DEFAULT_EGRESS_LEARN_ONE_IN = 4
# Second chance: what a repeating newcomer may pass per second under a known-sources rule.
DEFAULT_NEWCOMER_SOURCE_PPS = 100


ATTEMPTS: dict[str, tuple[Literal["native", "generic"], ...]] = {
    "auto": ("native", "generic"), "native": ("native",), "generic": ("generic",),
}


class DatapathError(RuntimeError):
    """The data path could not be set up."""


class AlreadyAttachedError(DatapathError):
    """The interface already carries an XDP program (or another agent holds it)."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How the program is built, where it is pinned and how it is attached."""

    mode: Mode = "auto"
    top_sources_size: int = DEFAULT_TOP_SOURCES_SIZE
    perf_buffer: bool | None = None  # None: a perf buffer only where ring buffers are missing
    pretend_missing_helpers: tuple[str, ...] = ()  # tests: the fallback on a full kernel
    pin_root: Path = DEFAULT_PIN_ROOT
    keep_pins: bool = False  # close() leaves the pins for the next start
    header_cache_dir: Path = DEFAULT_CACHE_DIR


@dataclass(frozen=True, slots=True)
class Settings:
    """What the agent writes into the config map at every start (no rebuild needed)."""

    sample_rate: int = 0
    src_insert_one_in: int = 8
    # Known sources (RuleSpec.spare_known): 1 passed TCP (non-SYN) / UDP packet in N is
    # looked up in the socket tables; 0 turns learning off.
    learn_one_in: int = DEFAULT_LEARN_ONE_IN
    # The TC egress program marks the peer of 1 UDP datagram in N the node sends as
    # known; 0: not attached.
    egress_learn_one_in: int = DEFAULT_EGRESS_LEARN_ONE_IN
    # Under a known-sources rule, a repeating newcomer passes this many packets a second.
    newcomer_source_pps: int = DEFAULT_NEWCOMER_SOURCE_PPS


@dataclass(frozen=True, slots=True)
class _Pinned:
    """A usable pin directory: its tables and an fd of each of its programs."""

    tables: Tables
    xdp_fd: int
    egress_fd: int  # -1: none
    cold: bool  # built by this start


def _want(options: LoadOptions) -> tuple[BuildOptions, tuple[str, ...]]:
    perf = (not libbpf.ringbuf_supported()) if options.perf_buffer is None \
        else options.perf_buffer
    missing = missing_socket_helpers(options.pretend_missing_helpers)
    return BuildOptions(top_sources_size=options.top_sources_size, perf_buffer=perf,
                        socket_guard=not missing), missing


def _open_pins(path: Path, want_hash: str) -> _Pinned | None:
    """The pins in `path` if they are the wanted build, complete and as described."""
    manifest = pins.read_manifest(path)
    why = pins.check(path, manifest, want_hash)
    if manifest is None or why:
        if manifest is not None or any(path.iterdir()):
            log.info("%s: pinned data path not reused: %s", path.name, why)
        return None
    try:
        tables = Tables(path, manifest)
    except (OSError, LayoutError) as exc:
        log.info("%s: pinned data path not reused: %s", path.name, exc)
        return None
    try:
        xdp_fd = libbpf.obj_get(path / pins.XDP_PROG)
        egress_fd = libbpf.obj_get(path / pins.EGRESS_PROG) \
            if (path / pins.EGRESS_PROG).exists() else -1
    except OSError:
        tables.close()
        return None
    return _Pinned(tables, xdp_fd, egress_fd, cold=False)


class XdpDatapath:
    """The XDP program attached to one interface, with typed access to its maps."""

    def __init__(self, pinned: _Pinned, info: AttachInfo, mode: Literal["native", "generic"],
                 path: Path, lock_fd: int, keep_pins: bool) -> None:
        self._pinned = pinned
        self._maps = DatapathMaps(pinned.tables)
        self._info = info
        self._mode = mode
        self._path = path
        self._lock_fd = lock_fd
        self._keep_pins = keep_pins
        self._closed = False

    @classmethod
    def open(cls, interface: str, options: LoadOptions = LoadOptions(),
             settings: Settings = Settings()) -> XdpDatapath:
        """Reuse or build the pins for `interface`, attach, write `settings`."""
        if options.mode not in ("auto", "native", "generic"):
            raise DatapathError(f"mode must be auto, native or generic, got {options.mode!r}")
        try:
            ifindex = xdp.ifindex_of(interface)
        except LookupError as exc:
            raise DatapathError(str(exc)) from None
        path = pins.pin_dir(interface, options.pin_root)
        try:
            lock_fd = pins.lock(path)
        except pins.LockedError as exc:
            raise AlreadyAttachedError(str(exc)) from None
        try:
            return cls._open_locked(interface, ifindex, options, settings, path, lock_fd)
        except BaseException:
            if not any(path.iterdir()):  # nothing built to keep for the next start
                pins.remove(path)
            os.close(lock_fd)
            raise

    @classmethod
    def _open_locked(cls, interface: str, ifindex: int, options: LoadOptions,
                     settings: Settings, path: Path, lock_fd: int) -> XdpDatapath:
        started = time.monotonic()
        on_link, on_link_mode = libbpf.xdp_query(ifindex)
        if on_link and on_link != pins.prog_id_at(path / pins.XDP_PROG):
            raise AlreadyAttachedError(
                f"{interface} already has an XDP program attached (prog id {on_link}); "
                "refusing a second attach")
        build, missing = _want(options)
        if missing:
            log.warning(
                "%s: this kernel lacks %s: socket-aware rules (spare) are off, plain rules "
                "only", interface, ", ".join(missing))
        want_hash = source_hash(build, FORMAT)
        pinned = _open_pins(path, want_hash)
        # A dead agent's program of another build stays attached (and working) until the
        # new one replaces it: keep a handle on it while its pins are emptied.
        old_fd = libbpf.prog_fd_by_id(on_link) if on_link and pinned is None else -1
        try:
            if pinned is None:
                pins.clear(path)
                compiler.build(path, build, lock_fd, options.header_cache_dir)
                pinned = _open_pins(path, want_hash)
                if pinned is None:
                    raise DatapathError(f"{path}: the build just made is not usable")
                pinned = _Pinned(pinned.tables, pinned.xdp_fd, pinned.egress_fd, cold=True)
            try:
                return cls._attach(interface, ifindex, options, settings, path, lock_fd,
                                   pinned, on_link, on_link_mode, old_fd, missing, started)
            except BaseException:
                pinned.tables.close()
                for fd in (pinned.xdp_fd, pinned.egress_fd):
                    if fd >= 0:
                        os.close(fd)
                raise
        finally:
            if old_fd >= 0:
                os.close(old_fd)

    @classmethod
    def _attach(cls, interface: str, ifindex: int, options: LoadOptions, settings: Settings,
                path: Path, lock_fd: int, pinned: _Pinned, on_link: int, on_link_mode: int,
                old_fd: int, missing: tuple[str, ...], started: float) -> XdpDatapath:
        new_id = int(libbpf.fdinfo(pinned.xdp_fd)["prog_id"])
        attempts = ATTEMPTS[options.mode]
        extra: dict[str, str] = {}
        used: Literal["native", "generic"] | None = None
        old_mode = xdp.mode_name(on_link_mode)
        if on_link and old_mode is None:
            raise AlreadyAttachedError(
                f"{interface}: the stale program {on_link} is attached in a mode "
                f"({on_link_mode}) this loader does not replace")
        if on_link == new_id and old_mode in attempts:
            used = old_mode  # the dead agent's program is this build: adopt it as it is
            extra["adopted_prog_id"] = str(on_link)
        elif on_link and old_mode in attempts:
            assert old_mode is not None
            try:
                xdp.replace(ifindex, pinned.xdp_fd, old_fd, old_mode)
            except OSError as exc:
                raise DatapathError(f"cannot replace XDP program {on_link} on {interface}: "
                                    f"{exc}") from exc
            used = old_mode
            extra["replaced_prog_id"] = str(on_link)
        else:
            if on_link:  # another mode was asked for: take the old program off first
                assert old_mode is not None
                xdp.detach(ifindex, old_mode)
                extra["replaced_prog_id"] = str(on_link)
            errors: list[str] = []
            for attempt in attempts:
                try:
                    xdp.attach(ifindex, pinned.xdp_fd, attempt)
                except OSError as exc:
                    errors.append(f"{attempt}: {exc}")
                    continue
                used = attempt
                break
            if used is None:
                raise DatapathError(f"cannot attach XDP to {interface}: " + "; ".join(errors))
            if errors:
                extra["fallback"] = errors[0]
        manifest = pinned.tables.manifest
        extra["samples"] = "perf_buffer" if manifest.perf_buffer else "ring_buffer"
        extra["socket_guard"] = "off: kernel lacks " + ", ".join(missing) if missing else "on"
        extra["pin_dir"] = str(path)
        extra["start"] = "cold (compiled)" if pinned.cold else "warm (pinned build reused)"
        extra["start_s"] = f"{time.monotonic() - started:.3f}"
        info = AttachInfo(interface=interface, ifindex=ifindex, mode=used, prog_id=new_id,
                          extra=extra, missing_helpers=missing)
        dp = cls(pinned, info, used, path, lock_fd, options.keep_pins)
        try:
            dp._apply(settings)
        except BaseException:
            dp._lock_fd = -1  # open() releases the lock it took
            dp._keep_pins = True  # a failed start leaves the build for the next one
            dp.close()
            raise
        return dp

    def _apply(self, settings: Settings) -> None:
        maps = self._maps
        maps.set_sample_rate(settings.sample_rate)
        maps.set_source_insert_rate(settings.src_insert_one_in)
        maps.set_learn_rate(0 if self._info.missing_helpers else settings.learn_one_in)
        maps.set_newcomer_source_pps(settings.newcomer_source_pps)
        maps.set_wake_pps(0)  # off until the agent derives it from its thresholds
        self._attach_egress(settings.egress_learn_one_in)

    def _attach_egress(self, one_in: int) -> None:
        """Put tc_egress_learn on the interface when asked for (and the socket guard is
        on: only its rules use known sources); a kernel refusal is logged and kept in
        attach_info.udp_egress_error (the agent's /health warns), XDP runs on."""
        if self._info.missing_helpers or not one_in:
            return
        error = self._pinned.tables.manifest.egress_error
        if not error:
            try:
                attach_egress(self._pinned.egress_fd, self._info.ifindex)
            except EgressError as exc:
                error = str(exc)
        if error:
            log.warning("%s: UDP egress learning off: %s", self._info.interface, error)
            self._info.udp_egress_error = error
            return
        self._info.udp_egress_learning = True  # close() removes it
        self._maps.set_egress_learn_rate(one_in)

    # ---------- Datapath ----------

    @property
    def attach_info(self) -> AttachInfo:
        return self._info

    @property
    def maps(self) -> DatapathMaps:
        return self._maps

    @property
    def prog_fd(self) -> int:
        """The XDP program's fd (tests and benchmarks run it with BPF_PROG_TEST_RUN)."""
        return self._pinned.xdp_fd

    @property
    def egress_prog_fd(self) -> int:
        """The TC egress program's fd (-1: not built)."""
        return self._pinned.egress_fd

    @property
    def pin_path(self) -> Path:
        return self._path

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

    def set_wake_pps(self, pps: float) -> None:
        self._maps.set_wake_pps(pps)

    def wait_wake(self, timeout_s: float) -> list[Wake]:
        return self._maps.wait_wake(timeout_s)

    def close(self) -> None:
        """Detach (only a program that is still ours: the link may be gone, its namespace
        deleted, which detached it already), then release or remove the pins."""
        if self._closed:
            return
        self._closed = True
        try:
            if xdp.xdp_prog_id(self._info.ifindex) == self._info.prog_id:
                xdp.detach(self._info.ifindex, self._mode)
        except OSError as exc:
            log.warning("%s: cannot detach XDP: %s", self._info.interface, exc)
        finally:
            if self._info.udp_egress_learning:
                detach_egress(self._info.ifindex)
            self._maps.close()
            for fd in (self._pinned.xdp_fd, self._pinned.egress_fd):
                if fd >= 0:
                    os.close(fd)
            if not self._keep_pins:
                pins.remove(self._path)
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # after the unpin: the next agent finds it clean
                self._lock_fd = -1

    def __enter__(self) -> XdpDatapath:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

"""The short-lived compiling process: bcc (and LLVM) live here and nowhere else.

    python -m ftagent.bpf.compile --pin-dir /sys/fs/bpf/ftagent/eth0 \\
        [--top-sources-size N] [--perf-buffer] [--no-socket-guard] [--lock-fd FD]

compiles bpf/ftxdp.c, loads xdp_main (and tc_egress_learn when built with the socket
guard), and pins the programs and the shared maps in the directory, then the manifest
(source hash, build options, every map's layout taken from bcc's generated types) last.
It does not attach anything. The directory's lock must be ours: the agent passes its
locked fd (--lock-fd); run by hand, it takes the lock itself, so it never rebuilds under
a running agent. The agent runs it through `build()` and waits for it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ftagent.bpf import libbpf, pins
from ftagent.bpf.headers import DEFAULT_CACHE_DIR
from ftagent.bpf.layout import FORMAT, MapLayout, describe
from ftagent.bpf.program import BuildOptions, CompileError, compile_xdp, source_hash
from ftagent.bpf.table import PER_CPU_TYPES

# The maps user space reads or writes (bpf/ftmaps.h, plus three of ftxdp.c's own):
# samples is the sample ring (or perf) buffer and wakes the wake-up one, sample_layout and
# wake_layout only carry their records' types, newcomers is reset by tests.
SHARED_MAPS = (
    "stats", "config", "top_v4", "top_v6", "top_cache_v4", "top_cache_v6",
    "allow_v4", "allow_v6", "rsrc_v4", "rsrc_v6", "rpfx_v4", "rpfx_v6", "rsig",
    "rule_stats", "frag_spared", "known_v4", "known_v6",
    "samples", "sample_layout", "wakes", "wake_layout", "newcomers",
)  # fmt: skip
BUFFER_MAPS = ("samples", "wakes")  # records, not keyed values: no key/value types
SOCKET_GUARD_MAPS = ("newcomers",)  # only in a build with the socket guard
BUILD_TIMEOUT_S = 300


def _layout(bpf: Any, name: str) -> MapLayout:
    table = bpf[name.encode()]
    info = libbpf.fdinfo(table.get_fd())
    map_type = int(info["map_type"])
    per_cpu = map_type in PER_CPU_TYPES
    typed = name not in BUFFER_MAPS
    return MapLayout(
        name=name, map_type=map_type, key_size=int(info["key_size"]),
        value_size=int(info["value_size"]), max_entries=int(info["max_entries"]),
        per_cpu=per_cpu,
        key=describe(table.Key) if typed else None,
        value=describe(table.sLeaf if per_cpu else table.Leaf) if typed else None,
    )  # fmt: skip


def build_here(path: Path, options: BuildOptions,
               header_cache_dir: Path = DEFAULT_CACHE_DIR) -> pins.Manifest:
    """Compile, load and pin into `path` (whose lock the caller holds), in this process."""
    from bcc import BPF

    bpf = compile_xdp(top_sources_size=options.top_sources_size,
                      perf_buffer=options.perf_buffer, header_cache_dir=header_cache_dir,
                      socket_guard=options.socket_guard)
    try:
        try:
            xdp_fd = bpf.load_func(b"xdp_main", BPF.XDP).fd
        except Exception as exc:  # bcc raises bare Exception with the verifier's log
            raise CompileError(f"the kernel rejected the XDP program: {exc}") from exc
        egress_fd, egress_error = -1, ""
        if options.socket_guard:
            try:
                egress_fd = bpf.load_func(b"tc_egress_learn", BPF.SCHED_CLS).fd
            except Exception as exc:  # the agent runs XDP without it and says why
                egress_error = f"the kernel rejected the TC egress program: {exc}"
        layouts = tuple(_layout(bpf, name) for name in SHARED_MAPS
                        if options.socket_guard or name not in SOCKET_GUARD_MAPS)
        pins.clear(path)
        for layout in layouts:
            libbpf.obj_pin(bpf[layout.name.encode()].get_fd(), path / layout.name)
        libbpf.obj_pin(xdp_fd, path / pins.XDP_PROG)
        if egress_fd >= 0:
            libbpf.obj_pin(egress_fd, path / pins.EGRESS_PROG)
        manifest = pins.Manifest(
            format=FORMAT, source_hash=source_hash(options, FORMAT),
            top_sources_size=options.top_sources_size, perf_buffer=options.perf_buffer,
            socket_guard=options.socket_guard, maps=layouts, egress_error=egress_error,
        )  # fmt: skip
        pins.write_manifest(path, manifest)
        return manifest
    finally:
        bpf.cleanup()


def build(path: Path, options: BuildOptions, lock_fd: int,
          header_cache_dir: Path = DEFAULT_CACHE_DIR) -> None:
    """Run the compiling process on `path` and wait for it (CompileError on failure).
    `lock_fd` is the caller's lock on `path`, lent to the child."""
    # -P: `-m` would put the working directory first on sys.path, and an agent started
    # from a checkout would then compile that checkout's sources, not its own.
    argv = [sys.executable, "-P", "-m", "ftagent.bpf.compile", "--pin-dir", str(path),
            "--top-sources-size", str(options.top_sources_size),
            "--header-cache-dir", str(header_cache_dir), "--lock-fd", str(lock_fd)]
    if options.perf_buffer:
        argv.append("--perf-buffer")
    if not options.socket_guard:
        argv.append("--no-socket-guard")
    try:
        done = subprocess.run(argv, pass_fds=(lock_fd,), capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"compiling the data path took over {BUILD_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise CompileError((done.stderr.strip() or f"exit status {done.returncode}")[-4000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftagent.bpf.compile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--pin-dir", type=Path, required=True)
    parser.add_argument("--top-sources-size", type=int,
                        default=BuildOptions().top_sources_size)
    parser.add_argument("--perf-buffer", action="store_true")
    parser.add_argument("--no-socket-guard", action="store_true")
    parser.add_argument("--header-cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--lock-fd", type=int, default=-1,
                        help="the caller's flock()ed fd on --pin-dir (else it is taken here)")
    args = parser.parse_args(argv)
    options = BuildOptions(top_sources_size=args.top_sources_size,
                           perf_buffer=args.perf_buffer,
                           socket_guard=not args.no_socket_guard)
    try:
        if args.lock_fd >= 0:
            # The lent fd is the caller's open file, so flock() on it succeeds only when
            # that lock is the caller's (or free): never under another agent.
            if not os.path.samestat(os.fstat(args.lock_fd), os.stat(args.pin_dir)):
                raise pins.PinError(f"--lock-fd {args.lock_fd} is not {args.pin_dir}")
            try:
                fcntl.flock(args.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise pins.LockedError(f"{args.pin_dir} is locked by another process") from None
            lock_fd = args.lock_fd
        else:
            lock_fd = pins.lock(args.pin_dir)
        try:
            build_here(args.pin_dir, options, args.header_cache_dir)
        finally:
            if args.lock_fd < 0:
                os.close(lock_fd)
    except (CompileError, pins.PinError, OSError) as exc:
        print(f"ftagent.bpf.compile: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

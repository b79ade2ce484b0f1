"""Test equipment for the kernel side: BPF_PROG_TEST_RUN (libbpf's
`bpf_prog_test_run_opts`, ctypes), the program built and pinned without attaching it
(`load_program`), and a count of our TC egress filters.

`test_run(prog_fd, frame, repeat=1)` runs an XDP program on `frame` in the kernel and
returns the XDP action and the kernel's mean ns per run. The frame must be 14..~3500
bytes (the kernel's limits for XDP test runs).
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftagent.bpf.maps import DatapathMaps
    from ftagent.bpf.program import BuildOptions

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)


class _TestRunOpts(ct.Structure):
    # libbpf's `struct bpf_test_run_opts` (a libbpf ABI struct, not one of our map layouts).
    _fields_ = (
        ("sz", ct.c_size_t),
        ("data_in", ct.c_void_p),
        ("data_out", ct.c_void_p),
        ("data_size_in", ct.c_uint32),
        ("data_size_out", ct.c_uint32),
        ("ctx_in", ct.c_void_p),
        ("ctx_out", ct.c_void_p),
        ("ctx_size_in", ct.c_uint32),
        ("ctx_size_out", ct.c_uint32),
        ("retval", ct.c_uint32),
        ("repeat", ct.c_int),
        ("duration", ct.c_uint32),
        ("flags", ct.c_uint32),
        ("cpu", ct.c_uint32),
        ("batch_size", ct.c_uint32),
    )


@dataclass(frozen=True, slots=True)
class TestRunResult:
    retval: int  # the XDP action
    duration_ns: int  # the kernel's mean per repetition


class TestRunError(OSError):
    pass


_fn: Any = None


def _func() -> Any:
    global _fn
    if _fn is None:
        lib = ct.CDLL("libbpf.so.1", use_errno=True)
        fn = lib.bpf_prog_test_run_opts
        fn.argtypes = (ct.c_int, ct.POINTER(_TestRunOpts))
        fn.restype = ct.c_int
        _fn = fn
    return _fn


def test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> TestRunResult:
    """Run the program `repeat` times on `frame`; raise TestRunError on a kernel error."""
    buf = ct.create_string_buffer(frame, len(frame))
    opts = _TestRunOpts()
    opts.sz = ct.sizeof(_TestRunOpts)
    opts.data_in = ct.cast(buf, ct.c_void_p)
    opts.data_size_in = len(frame)
    opts.repeat = max(1, repeat)
    rc = _func()(prog_fd, ct.byref(opts))
    if rc != 0:
        err = ct.get_errno() or -rc
        raise TestRunError(err, f"BPF_PROG_TEST_RUN failed: {os.strerror(err)}")
    return TestRunResult(retval=int(opts.retval), duration_ns=int(opts.duration))


test_run.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
TestRunResult.__test__ = False  # type: ignore[attr-defined]


def egress_filter_count(ifindex: int) -> int:
    """How many bpf filters of ours sit on the interface's egress hook (a restart must
    leave exactly one). 0 when the interface has no clsact qdisc at all; any other
    netlink error is raised (a test must not read it as "none")."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from ftagent.bpf.egress import CLSACT_EGRESS, EGRESS_FILTER_PRIO, filters

    with IPRoute() as ipr:
        try:
            found = filters(ipr, ifindex, CLSACT_EGRESS)
        except NetlinkError as exc:
            if exc.code in (errno.EINVAL, errno.ENOENT):  # no clsact: no filter either
                return 0
            raise
    return sum(1 for f in found if (f["info"] >> 16) == EGRESS_FILTER_PRIO)


# Pins made by tests and benchmarks (never the agents' own /sys/fs/bpf/ftagent).
TEST_PIN_ROOT = Path("/sys/fs/bpf/ftagent-test")


@dataclass
class LoadedProgram:
    """The data path built and pinned as the agent's compiling process does it, opened as
    the agent opens it, but attached nowhere: BPF_PROG_TEST_RUN drives it."""

    path: Path
    fd: int  # the XDP program
    maps: DatapathMaps

    def close(self) -> None:
        from ftagent.bpf import pins

        self.maps.close()
        os.close(self.fd)
        pins.remove(self.path)


def load_program(name: str, options: BuildOptions | None = None) -> LoadedProgram:
    """Build into TEST_PIN_ROOT/<name>-<pid> (in this process: bcc is fine in tests) and
    open it through the pins."""
    from ftagent.bpf import libbpf, pins
    from ftagent.bpf.compile import build_here
    from ftagent.bpf.maps import DatapathMaps
    from ftagent.bpf.program import BuildOptions
    from ftagent.bpf.tables import Tables

    path = TEST_PIN_ROOT / f"{name}-{os.getpid()}"
    lock_fd = pins.lock(path)
    try:
        manifest = build_here(path, options or BuildOptions())
        maps = DatapathMaps(Tables(path, manifest))
        return LoadedProgram(path, libbpf.obj_get(path / pins.XDP_PROG), maps)
    except BaseException:
        pins.remove(path)
        raise
    finally:
        os.close(lock_fd)

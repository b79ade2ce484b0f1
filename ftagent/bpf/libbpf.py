"""Plain bpf(2) calls through libbpf (Debian's libbpf1, ctypes): no LLVM, no bcc.

The long-running agent reaches its pinned maps and programs only through this module:
open a pin, look up / update / delete / walk a map, attach an XDP program by fd, read a
ring or perf buffer. Every failure raises `BpfError` (an OSError carrying errno).
"""

from __future__ import annotations

import ctypes as ct
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIBBPF = "libbpf.so.1"

BPF_ANY = 0
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_RINGBUF = 27
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_REPLACE = 1 << 4


class BpfError(OSError):
    """A bpf(2) call (or libbpf) failed; errno says why."""


class _XdpAttachOpts(ct.Structure):
    _fields_ = (("sz", ct.c_size_t), ("old_prog_fd", ct.c_int))


class _XdpQueryOpts(ct.Structure):
    _fields_ = (
        ("sz", ct.c_size_t),
        ("prog_id", ct.c_uint32),
        ("drv_prog_id", ct.c_uint32),
        ("hw_prog_id", ct.c_uint32),
        ("skb_prog_id", ct.c_uint32),
        ("attach_mode", ct.c_uint8),
    )


SampleFn = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_size_t)
PerfSampleFn = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int, ct.c_void_p, ct.c_uint32)
PerfLostFn = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int, ct.c_uint64)

_lib: Any = None


def lib() -> Any:
    """libbpf.so.1 with the prototypes this module uses (loaded once)."""
    global _lib
    if _lib is not None:
        return _lib
    so = ct.CDLL(LIBBPF, use_errno=True)
    i, u32, p, sz = ct.c_int, ct.c_uint32, ct.c_void_p, ct.c_size_t
    protos: dict[str, tuple[Any, tuple[Any, ...]]] = {
        "bpf_obj_get": (i, (ct.c_char_p,)),
        "bpf_obj_pin": (i, (i, ct.c_char_p)),
        "bpf_map_lookup_elem": (i, (i, p, p)),
        "bpf_map_update_elem": (i, (i, p, p, ct.c_uint64)),
        "bpf_map_delete_elem": (i, (i, p)),
        "bpf_map_get_next_key": (i, (i, p, p)),
        "bpf_map_lookup_batch": (i, (i, p, p, p, p, ct.POINTER(u32), p)),
        "bpf_map_create": (i, (i, ct.c_char_p, u32, u32, u32, p)),
        "bpf_map_freeze": (i, (i,)),
        "bpf_prog_get_fd_by_id": (i, (u32,)),
        "libbpf_num_possible_cpus": (i, ()),
        "libbpf_probe_bpf_map_type": (i, (i, p)),
        "bpf_xdp_attach": (i, (i, i, u32, ct.POINTER(_XdpAttachOpts))),
        "bpf_xdp_detach": (i, (i, u32, p)),
        "bpf_xdp_query": (i, (i, i, ct.POINTER(_XdpQueryOpts))),
        "ring_buffer__new": (p, (i, SampleFn, p, p)),
        "ring_buffer__consume": (i, (p,)),
        "ring_buffer__poll": (i, (p, i)),
        "ring_buffer__free": (None, (p,)),
        "perf_buffer__new": (p, (i, sz, PerfSampleFn, PerfLostFn, p, p)),
        "perf_buffer__consume": (i, (p,)),
        "perf_buffer__poll": (i, (p, i)),
        "perf_buffer__free": (None, (p,)),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = restype, argtypes
    _lib = so
    return so


def _check(rc: int, what: str) -> int:
    """libbpf returns -errno (and sets errno); raise BpfError on a negative result."""
    if rc < 0:
        err = ct.get_errno() or -rc
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return rc


def obj_get(path: Path) -> int:
    """An fd for the object pinned at `path` (BpfError, errno ENOENT when none)."""
    return _check(lib().bpf_obj_get(str(path).encode()), f"open pin {path}")


def obj_pin(fd: int, path: Path) -> None:
    _check(lib().bpf_obj_pin(fd, str(path).encode()), f"pin {path}")


def fdinfo(fd: int) -> dict[str, str]:
    """The kernel's /proc/self/fdinfo of a bpf fd (map_type, key_size, prog_id, ...)."""
    out: dict[str, str] = {}
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def map_lookup(fd: int, key: Any, value: Any) -> bool:
    """Fill `value` (a ctypes object) with the element at `key`; False when absent."""
    rc = lib().bpf_map_lookup_elem(fd, ct.byref(key), ct.byref(value))
    if rc < 0 and (ct.get_errno() or -rc) == 2:  # ENOENT
        return False
    _check(rc, "map lookup")
    return True


def map_update(fd: int, key: Any, value: Any, flags: int = BPF_ANY) -> None:
    _check(lib().bpf_map_update_elem(fd, ct.byref(key), ct.byref(value), flags), "map update")


def map_delete(fd: int, key: Any) -> bool:
    """Delete the element at `key`; False when it was not there."""
    rc = lib().bpf_map_delete_elem(fd, ct.byref(key))
    if rc < 0 and (ct.get_errno() or -rc) == 2:
        return False
    _check(rc, "map delete")
    return True


def map_next_key(fd: int, key: Any | None, next_key: Any) -> bool:
    """Fill `next_key` with the key after `key` (None: the first); False at the end."""
    rc = lib().bpf_map_get_next_key(fd, None if key is None else ct.byref(key),
                                    ct.byref(next_key))
    if rc < 0 and (ct.get_errno() or -rc) == 2:
        return False
    _check(rc, "map get_next_key")
    return True


def map_lookup_batch(fd: int, key_size: int, value_size: int, max_entries: int
                     ) -> tuple[bytes, bytes, int]:
    """Every key and value, in one pass of batch calls: (keys, values, count), the keys
    and values packed back to back as the kernel copies them. BpfError (EINVAL, ENOTSUPP,
    ...) when the map type has no batch operations (LPM tries, older kernels)."""
    n = max(1, max_entries)
    keys = ct.create_string_buffer(key_size * n)
    values = ct.create_string_buffer(value_size * n)
    token_size = max(key_size, 8)
    in_batch = ct.create_string_buffer(token_size)
    out_batch = ct.create_string_buffer(token_size)
    got = 0
    first = True
    while got < n:
        count = ct.c_uint32(n - got)
        rc = lib().bpf_map_lookup_batch(
            fd, None if first else in_batch, out_batch,
            ct.byref(keys, got * key_size), ct.byref(values, got * value_size),
            ct.byref(count), None)  # fmt: skip
        err = (ct.get_errno() or -rc) if rc < 0 else 0
        if rc < 0 and err != 2:
            _check(rc, "map lookup_batch")
        got += count.value
        if rc < 0 or count.value == 0:  # ENOENT: the walk is over
            break
        ct.memmove(in_batch, out_batch, token_size)
        first = False
    return keys.raw[: got * key_size], values.raw[: got * value_size], got


def map_create(map_type: int, name: str, key_size: int, value_size: int,
               max_entries: int) -> int:
    return _check(lib().bpf_map_create(map_type, name.encode(), key_size, value_size,
                                       max_entries, None), f"create map {name}")


def map_freeze(fd: int) -> None:
    """No more writes from user space (the manifest cannot change under a reader)."""
    _check(lib().bpf_map_freeze(fd), "map freeze")


def prog_fd_by_id(prog_id: int) -> int:
    return _check(lib().bpf_prog_get_fd_by_id(prog_id), f"open program id {prog_id}")


def num_possible_cpus() -> int:
    return _check(lib().libbpf_num_possible_cpus(), "count possible CPUs")


def ringbuf_supported() -> bool:
    """Whether this kernel has BPF ring buffers (else samples go through a perf buffer)."""
    return bool(lib().libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, None) == 1)


def xdp_attach(ifindex: int, prog_fd: int, flags: int, old_prog_fd: int = -1) -> None:
    """Attach by fd. With XDP_FLAGS_REPLACE and `old_prog_fd`, the kernel swaps that
    program for this one atomically (and refuses when another one is attached)."""
    opts = _XdpAttachOpts(sz=ct.sizeof(_XdpAttachOpts), old_prog_fd=old_prog_fd)
    _check(lib().bpf_xdp_attach(ifindex, prog_fd, flags, ct.byref(opts)),
           f"attach XDP to ifindex {ifindex}")


def xdp_detach(ifindex: int, flags: int) -> None:
    _check(lib().bpf_xdp_detach(ifindex, flags, None), f"detach XDP from ifindex {ifindex}")


def xdp_query(ifindex: int) -> tuple[int, int]:
    """(prog id, attach mode) of `ifindex`'s XDP program; mode 0 none, 1 driver,
    2 generic, 3 hardware, 4 several."""
    opts = _XdpQueryOpts(sz=ct.sizeof(_XdpQueryOpts))
    _check(lib().bpf_xdp_query(ifindex, 0, ct.byref(opts)), f"query XDP of ifindex {ifindex}")
    return int(opts.prog_id), int(opts.attach_mode)


class RingBuffer:
    """libbpf's ring-buffer consumer (or its perf-buffer one) on a map fd; `on_sample`
    gets each record's address and returns nonzero to stop the current drain."""

    def __init__(self, map_fd: int, on_sample: Callable[[int], int], *,
                 perf_buffer: bool = False, perf_pages: int = 8) -> None:
        self._perf = perf_buffer
        self._ptr: int | None
        if perf_buffer:
            def perf_cb(_ctx: Any, _cpu: int, data: Any, _size: int) -> None:
                on_sample(int(data))

            def lost_cb(_ctx: Any, _cpu: int, _count: int) -> None:
                return None

            self._callbacks: tuple[Any, ...] = (PerfSampleFn(perf_cb), PerfLostFn(lost_cb))
            self._ptr = lib().perf_buffer__new(map_fd, perf_pages, *self._callbacks, None, None)
        else:
            def ring_cb(_ctx: Any, data: Any, _size: int) -> int:
                return on_sample(int(data))

            self._callbacks = (SampleFn(ring_cb),)
            self._ptr = lib().ring_buffer__new(map_fd, self._callbacks[0], None, None)
        if not self._ptr:
            err = ct.get_errno()
            raise BpfError(err, f"open the sample buffer: {os.strerror(err)}")

    def consume(self) -> None:
        """Drain what is there now, without blocking."""
        if self._ptr is None:
            return
        if self._perf:
            lib().perf_buffer__consume(self._ptr)
        else:
            lib().ring_buffer__consume(self._ptr)

    def poll(self, timeout_ms: int) -> int:
        """Block up to `timeout_ms` for records (epoll; the GIL is released meanwhile) and
        hand each to `on_sample`; the number handled (0 on a timeout or EINTR)."""
        if self._ptr is None:
            return 0
        if self._perf:
            rc = lib().perf_buffer__poll(self._ptr, timeout_ms)
        else:
            rc = lib().ring_buffer__poll(self._ptr, timeout_ms)
        if rc < 0 and (ct.get_errno() or -rc) == 4:  # EINTR
            return 0
        return _check(rc, "poll the buffer")

    def close(self) -> None:
        if self._ptr is None:
            return
        if self._perf:
            lib().perf_buffer__free(self._ptr)
        else:
            lib().ring_buffer__free(self._ptr)
        self._ptr = None

"""Which BPF helpers the running kernel offers to XDP programs (libbpf's own probe).

The socket-aware rules (RuleSpec.spare) need the helpers in SOCKET_HELPERS. When one is
missing the loader builds the program without them (-DFT_NO_SOCKET_GUARD) and refuses
rules that would spare: the agent keeps today's plain rules.
"""

from __future__ import annotations

import ctypes as ct
from collections.abc import Collection
from typing import Any

BPF_PROG_TYPE_XDP = 6
# name -> enum bpf_func_id (include/uapi/linux/bpf.h)
SOCKET_HELPERS: dict[str, int] = {
    "bpf_sk_lookup_tcp": 84,
    "bpf_sk_lookup_udp": 85,
    "bpf_sk_release": 86,
    "bpf_skc_lookup_tcp": 99,
    "bpf_tcp_check_syncookie": 100,
}

_probe: Any = None


def _probe_fn() -> Any:
    global _probe
    if _probe is None:
        lib = ct.CDLL("libbpf.so.1", use_errno=True)
        fn = lib.libbpf_probe_bpf_helper
        fn.argtypes = (ct.c_int, ct.c_int, ct.c_void_p)
        fn.restype = ct.c_int
        _probe = fn
    return _probe


def helper_available(name: str) -> bool:
    """True when the kernel lets an XDP program call helper `name` (a SOCKET_HELPERS key)."""
    return bool(_probe_fn()(BPF_PROG_TYPE_XDP, SOCKET_HELPERS[name], None) == 1)


def missing_socket_helpers(pretend_missing: Collection[str] = ()) -> tuple[str, ...]:
    """The socket helpers this kernel lacks, plus those in `pretend_missing` (tests use it
    to exercise the fallback on a kernel that has them all)."""
    unknown = set(pretend_missing) - set(SOCKET_HELPERS)
    if unknown:
        raise ValueError(f"unknown helper name(s) {sorted(unknown)}; known: {list(SOCKET_HELPERS)}")
    return tuple(
        name for name in SOCKET_HELPERS if name in pretend_missing or not helper_available(name)
    )

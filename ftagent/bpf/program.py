"""Compile bpf/ with bcc: the XDP program (bpf/ftxdp.c) or the maps-only view (bpf/ftview.c).

Sources are loaded by absolute path; every option is a cflag. The kernel-header tree is
found or built by `ftagent.bpf.headers` before bcc runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ftagent.bpf.headers import DEFAULT_CACHE_DIR, use_kernel_headers

_CHECKOUT_BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
# Installed from the wheel (packaging/install.sh), the C sources are data files of the venv.
_INSTALLED_BPF_DIR = Path(sys.prefix) / "share" / "fasttrace" / "bpf"
BPF_DIR = Path(os.environ.get(
    "FTAGENT_BPF_DIR",
    _CHECKOUT_BPF_DIR if (_CHECKOUT_BPF_DIR / "ftxdp.c").is_file() else _INSTALLED_BPF_DIR,
))
XDP_SOURCE = BPF_DIR / "ftxdp.c"
VIEW_SOURCE = BPF_DIR / "ftview.c"
HEADER = BPF_DIR / "ftshared.h"
DEFAULT_TOP_SOURCES_SIZE = 16384

# bcc's rewriter and the kernel headers produce warnings that say nothing about our code.
_QUIET = ["-Wno-unused-value", "-Wno-pointer-sign", "-Wno-compare-distinct-pointer-types",
          "-Wno-gnu-variable-sized-type-not-at-end", "-Wno-address-of-packed-member",
          "-Wno-tautological-compare", "-Wno-unknown-warning-option", "-Wno-macro-redefined"]


class CompileError(RuntimeError):
    """bcc could not compile or load the program."""


def _bcc() -> Any:
    try:
        import bcc
    except ImportError as exc:
        raise CompileError(
            "bcc is not importable: install Debian's python3-bpfcc and use a venv built "
            "with --system-site-packages"
        ) from exc
    return bcc


def cflags(*, top_sources_size: int = DEFAULT_TOP_SOURCES_SIZE, perf_buffer: bool = False,
           pin_dir: Path | None = None, socket_guard: bool = True) -> list[str]:
    flags = [f"-I{BPF_DIR}", f"-DFT_TOP_SOURCES_SIZE={int(top_sources_size)}", *_QUIET]
    if perf_buffer:
        flags.append("-DFT_PERFBUF")
    if not socket_guard:
        flags.append("-DFT_NO_SOCKET_GUARD")
    if pin_dir is not None:
        if '"' in str(pin_dir) or "\\" in str(pin_dir):
            raise CompileError(f"unsupported characters in pin directory {pin_dir}")
        flags.append(f'-DFT_PIN_DIR="{pin_dir}"')
    return flags


def compile_xdp(*, top_sources_size: int = DEFAULT_TOP_SOURCES_SIZE, perf_buffer: bool = False,
                header_cache_dir: Path = DEFAULT_CACHE_DIR, socket_guard: bool = True) -> Any:
    """Compile bpf/ftxdp.c; returns the bcc.BPF object (maps created, program not loaded).

    socket_guard=False builds it without the socket-lookup helpers (older kernels)."""
    if not 1 <= top_sources_size <= 1 << 24:
        raise CompileError(f"top_sources_size must be 1..{1 << 24}, got {top_sources_size}")
    use_kernel_headers(header_cache_dir)
    bcc = _bcc()
    try:
        return bcc.BPF(src_file=str(XDP_SOURCE).encode(),
                       cflags=cflags(top_sources_size=top_sources_size, perf_buffer=perf_buffer,
                                     socket_guard=socket_guard))
    except Exception as exc:
        raise CompileError(f"bcc failed to compile {XDP_SOURCE}: {exc}") from exc


def compile_view(pin_dir: Path, *, header_cache_dir: Path = DEFAULT_CACHE_DIR) -> Any:
    """Open the maps pinned in `pin_dir` through bpf/ftview.c (typed, no program)."""
    use_kernel_headers(header_cache_dir)
    bcc = _bcc()
    try:
        return bcc.BPF(src_file=str(VIEW_SOURCE).encode(), cflags=cflags(pin_dir=pin_dir))
    except Exception as exc:
        raise CompileError(f"could not open the pinned maps in {pin_dir}: {exc}") from exc


def ringbuf_supported() -> bool:
    """Whether this kernel has BPF ring buffers (else samples go through a perf buffer)."""
    bcc = _bcc()
    probe = getattr(bcc.BPF, "support_ringbuf", None)
    if callable(probe):
        return bool(probe())
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (5, 8)
    except (IndexError, ValueError):
        return True

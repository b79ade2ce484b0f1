"""Compile bpf/ftxdp.c with bcc, and the hash that says which build a set of pins holds.

Sources are loaded by absolute path; every option is a cflag. The kernel-header tree is
found or built by `ftagent.bpf.headers` before bcc runs. Only the short-lived compiling
process (ftagent.bpf.compile) and tests call `compile_xdp`; `source_hash` needs no bcc.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
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
HEADER = BPF_DIR / "ftshared.h"
# Everything ftxdp.c is built from (the kernel headers follow the kernel release).
SOURCES = (XDP_SOURCE, BPF_DIR / "ftmaps.h", HEADER)
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
           socket_guard: bool = True) -> list[str]:
    flags = [f"-I{BPF_DIR}", f"-DFT_TOP_SOURCES_SIZE={int(top_sources_size)}", *_QUIET]
    if perf_buffer:
        flags.append("-DFT_PERFBUF")
    if not socket_guard:
        flags.append("-DFT_NO_SOCKET_GUARD")
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


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What a build of the program depends on besides its sources (all in its hash)."""

    top_sources_size: int = DEFAULT_TOP_SOURCES_SIZE
    perf_buffer: bool = False  # samples through a perf buffer (no BPF ring buffer)
    socket_guard: bool = True  # False: built without the socket-lookup helpers

    def cflags(self) -> list[str]:
        return cflags(top_sources_size=self.top_sources_size, perf_buffer=self.perf_buffer,
                      socket_guard=self.socket_guard)


def source_hash(options: BuildOptions, format_version: int) -> str:
    """sha256 over the sources, the cflags, the kernel release and the manifest format:
    equal hashes mean a pinned build is the one this agent would compile."""
    h = hashlib.sha256()
    h.update(f"format {format_version}\nkernel {os.uname().release}\n".encode())
    h.update(" ".join(options.cflags()).encode() + b"\n")
    for path in SOURCES:
        h.update(f"{path.name} {path.stat().st_size}\n".encode())
        h.update(path.read_bytes())
    return h.hexdigest()

"""An interface's XDP hook: which program is on it, in which mode; attach and detach by
fd (libbpf's netlink calls, in the calling thread's network namespace)."""

from __future__ import annotations

import errno
import socket
from typing import Literal

from ftagent.bpf import libbpf
from ftagent.bpf.libbpf import (
    XDP_FLAGS_DRV_MODE,
    XDP_FLAGS_REPLACE,
    XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST,
)

Mode = Literal["auto", "native", "generic"]
# IFLA_XDP_ATTACHED values
XDP_ATTACHED_NONE, XDP_ATTACHED_DRV, XDP_ATTACHED_SKB = 0, 1, 2
MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}


class NoSuchInterfaceError(LookupError):
    pass


def ifindex_of(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise NoSuchInterfaceError(
            f"no interface named {interface!r} in this network namespace") from None


def xdp_prog_id(ifindex: int) -> int:
    """Id of the XDP program attached to `ifindex` (0: none, or no such interface: its
    namespace was deleted, which detached the program); other failures raise."""
    try:
        return libbpf.xdp_query(ifindex)[0]
    except libbpf.BpfError as exc:
        if exc.errno == errno.ENODEV:
            return 0
        raise


def xdp_attached_mode(ifindex: int) -> int:
    """IFLA_XDP_ATTACHED of `ifindex` (0 none, 1 driver, 2 generic/skb, 3 hw, 4 several)."""
    return libbpf.xdp_query(ifindex)[1]


def mode_name(attached: int) -> Literal["native", "generic"] | None:
    """The mode of a single attached program (None: none, hardware or several)."""
    if attached == XDP_ATTACHED_DRV:
        return "native"
    if attached == XDP_ATTACHED_SKB:
        return "generic"
    return None


def attach(ifindex: int, prog_fd: int, mode: Literal["native", "generic"]) -> int:
    """Attach where no program is (the kernel refuses otherwise); returns the flags used."""
    flags = XDP_FLAGS_UPDATE_IF_NOEXIST | MODE_FLAGS[mode]
    libbpf.xdp_attach(ifindex, prog_fd, flags)
    return flags


def replace(ifindex: int, prog_fd: int, old_prog_fd: int,
            mode: Literal["native", "generic"]) -> int:
    """Swap `old_prog_fd`'s program for this one in one step (traffic never meets no
    program or two); the kernel refuses when another program is on the hook."""
    flags = XDP_FLAGS_REPLACE | MODE_FLAGS[mode]
    libbpf.xdp_attach(ifindex, prog_fd, flags, old_prog_fd=old_prog_fd)
    return flags


def detach(ifindex: int, mode: Literal["native", "generic"]) -> None:
    libbpf.xdp_detach(ifindex, MODE_FLAGS[mode])

"""The socket guard as the agent sees it: can rules spare what the node's sockets want
(the data path's helper probe), which UDP ports carry a real service (asked of the kernel
when a plan is made), and are the kernel's SYN cookies on (a SYN rule hands SYNs for
listening ports to them).

Without the guard the planner falls back to plain rules (rate limits on classes); the
reason is logged and shown in /health and `ftagent status`. With SYN cookies off
(net.ipv4.tcp_syncookies = 0) a SYN flood to a listening port fills its backlog: the
agent warns, and sets it to 1 only when `[mitigation] enable_syncookies = true`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ftagent.datapath import AttachInfo
from ftagent.mitigate.sockets import (
    SocketTableError,
    bound_udp_ports,
    set_tcp_syncookies,
    tcp_syncookies,
)

log = logging.getLogger("ftagent.guard")


def udp_port_bound(port: int) -> bool:
    """Whether a UDP service socket is bound to `port` in this thread's namespace (an
    unreadable table counts as no: the rule then spares any socket and the leak check
    tightens it if the flood gets through)."""
    try:
        return port in bound_udp_ports()
    except SocketTableError as exc:
        log.warning("cannot tell whether UDP port %d has a service: %s", port, exc)
        return False


def _no_service(port: int) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class SocketGuard:
    """What the planner may rely on."""

    available: bool  # rules may spare what the node's sockets want (RuleSpec.spare)
    reason: str  # "on", or why not
    udp_bound: Callable[[int], bool] = field(default=_no_service, compare=False)


NO_GUARD = SocketGuard(False, "no socket-aware data path")


def guard_of(info: AttachInfo) -> SocketGuard:
    if info.socket_guard:
        return SocketGuard(True, "on", udp_port_bound)
    reason = "kernel lacks " + ", ".join(info.missing_helpers)
    log.warning(
        "socket guard off (%s): mitigation falls back to plain rules, rate limits on "
        "traffic classes that real users share",
        reason,
        extra={"event": "socket_guard_off", "missing_helpers": list(info.missing_helpers)},
    )
    return SocketGuard(False, reason)


@dataclass(frozen=True, slots=True)
class SyncookieState:
    value: int | None  # net.ipv4.tcp_syncookies; None: unreadable
    warning: str | None  # for the log and /health; None when all is well


def check_syncookies(enable: bool) -> SyncookieState:
    """Read net.ipv4.tcp_syncookies; with `enable`, turn 0 into 1 (said in the log)."""
    value = tcp_syncookies()
    if value is None:
        return SyncookieState(None, "net.ipv4.tcp_syncookies unreadable: SYN floods unchecked")
    if value != 0:
        return SyncookieState(value, None)
    if enable:
        try:
            set_tcp_syncookies(1)
        except OSError as exc:
            text = f"net.ipv4.tcp_syncookies is 0 and setting it to 1 failed: {exc.strerror}"
            log.warning(text, extra={"event": "syncookies_off"})
            return SyncookieState(0, text)
        log.warning(
            "net.ipv4.tcp_syncookies was 0: set to 1 ([mitigation] enable_syncookies)",
            extra={"event": "syncookies_enabled"},
        )
        return SyncookieState(1, None)
    text = (
        "net.ipv4.tcp_syncookies is 0: a SYN flood to a listening port will refuse real "
        "clients (set it to 1, or [mitigation] enable_syncookies = true)"
    )
    log.warning(text, extra={"event": "syncookies_off"})
    return SyncookieState(0, text)

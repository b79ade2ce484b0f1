"""The TC egress half of the data path: `tc_egress_learn` (bpf/ftxdp.c) on the XDP
interface, which marks the peers the node sends UDP to as known sources.

It is a bpf filter (direct-action) on the interface's clsact qdisc, at a fixed preference
and handle: attaching replaces a filter a killed agent left there instead of adding a
second one. Removing it leaves the clsact qdisc when another filter still uses it (the
lab's pass counter sits on the same qdisc's ingress hook).
"""

from __future__ import annotations

import errno
import logging
from typing import Any

log = logging.getLogger(__name__)

CLSACT_INGRESS = 0xFFFFFFF2
CLSACT_EGRESS = 0xFFFFFFF3
# Fixed, so that a restart finds (and replaces) its own filter; arbitrary otherwise.
EGRESS_FILTER_PRIO = 0xFA57
EGRESS_FILTER_HANDLE = 1
EGRESS_FUNC = "tc_egress_learn"


class EgressError(RuntimeError):
    """The egress program could not be attached."""


def _netlink_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def attach_egress(prog_fd: int, ifindex: int) -> None:
    """Put tc_egress_learn (loaded and pinned by the compiling process; it shares the XDP
    program's maps) on `ifindex`'s egress hook; raise EgressError saying why it could not."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            try:
                ipr.tc("add", "clsact", ifindex)
            except NetlinkError as exc:
                if _netlink_code(exc) != errno.EEXIST:
                    raise
            ipr.tc(
                "replace-filter", "bpf", ifindex, EGRESS_FILTER_HANDLE,
                fd=prog_fd, name=EGRESS_FUNC, parent=CLSACT_EGRESS,
                prio=EGRESS_FILTER_PRIO, direct_action=True,
            )  # fmt: skip
    except (NetlinkError, OSError, ValueError) as exc:
        raise EgressError(f"cannot attach the TC egress program (clsact, bpf): {exc}") from exc


def filters(ipr: Any, ifindex: int, parent: int) -> list[Any]:
    # The dump lists each preference once without a handle (the chain's own entry), then
    # its filters: only the latter are filters.
    return [f for f in ipr.get_filters(index=ifindex, parent=parent) if f["handle"]]


def detach_egress(ifindex: int) -> None:
    """Remove our filter; the clsact qdisc too when nothing else is on it. Quiet when the
    interface or the qdisc is gone already."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            ipr.tc(
                "del-filter", "bpf", ifindex, EGRESS_FILTER_HANDLE,
                parent=CLSACT_EGRESS, prio=EGRESS_FILTER_PRIO,
            )  # fmt: skip
        except NetlinkError as exc:
            if _netlink_code(exc) not in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                log.warning("cannot remove the TC egress program from ifindex %d: %s",
                            ifindex, exc)  # fmt: skip
            return
        try:
            others = filters(ipr, ifindex, CLSACT_INGRESS) + filters(ipr, ifindex, CLSACT_EGRESS)
            if not others:
                ipr.tc("del", "clsact", ifindex)
        except NetlinkError as exc:
            log.debug("clsact on ifindex %d left in place: %s", ifindex, exc)

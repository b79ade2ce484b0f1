"""The namespace lab: `attacker` and `victim` network namespaces joined by a veth pair.

    from lab.netns import Lab
    with Lab() as lab:                       # or Lab.create() ... lab.destroy()
        lab.victim_if                        # the interface the agent watches
        lab.run(lab.victim_ns, ["ftagent", "run", "--config", cfg])
        with lab.inside(lab.victim_ns):      # this thread enters the namespace
            dp = XdpDatapath.open(lab.victim_if)

Names are unique per run (`attacker-<pid>-<n>`, `victim-<pid>-<n>`, interfaces
`fta<pid>x<n>` / `ftv<pid>x<n>`), so parallel runs never clash. Addresses: attacker
10.77.0.1/24 + fd77::1/64, victim 10.77.0.2/24 + fd77::2/64; loopback up; no default
route in either namespace, so spoofed floods can go nowhere but the victim. Everything
is removed by destroy()/__exit__ (also after an exception) and at interpreter exit.
All netlink work goes through pyroute2; commands run in a namespace through nsenter.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import itertools
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

NETNS_DIR = Path("/run/netns")
ATTACKER_V4, VICTIM_V4, V4_PREFIX = "10.77.0.1", "10.77.0.2", 24
ATTACKER_V6, VICTIM_V6, V6_PREFIX = "fd77::1", "fd77::2", 64
CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02  # no duplicate-address detection: IPv6 addresses usable at once

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_live: set[Lab] = set()


class LabError(RuntimeError):
    pass


def next_run_id() -> str:
    with _counter_lock:
        return f"{os.getpid()}-{next(_counter)}"


def nsenter_argv(ns: str, argv: Sequence[str]) -> list[str]:
    """argv that runs `argv` inside network namespace `ns` (by its /run/netns name)."""
    return ["nsenter", f"--net={NETNS_DIR / ns}", "--", *argv]


class InNamespaces:
    """Running things inside a lab's namespaces (shared by Lab and CollateralLab)."""

    def run(self, ns: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """subprocess.run inside namespace `ns` (check=False unless given)."""
        return subprocess.run(nsenter_argv(ns, argv), check=kwargs.pop("check", False), **kwargs)

    def popen(self, ns: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """subprocess.Popen inside namespace `ns`."""
        return subprocess.Popen(nsenter_argv(ns, argv), **kwargs)

    @contextlib.contextmanager
    def inside(self, ns: str) -> Iterator[None]:
        """Move the calling thread into namespace `ns` for the block, then back."""
        with enter_netns(ns):
            yield

    def ipr(self, ns: str) -> Any:
        """A pyroute2 NetNS handle for `ns` (close it, or use it as a context manager)."""
        from pyroute2 import NetNS

        return NetNS(ns, flags=0)  # never create a namespace by asking for a handle


# (namespace, interface, IPv4 address, IPv6 address) of one end of a veth pair
VethEnd = tuple[str, str, str, str]


def build_veth_pair(a: VethEnd, b: VethEnd, v4_prefix: int, v6_prefix: int) -> tuple[str, str]:
    """Create both namespaces and a veth pair between them, loopback up and each end
    addressed and up (IPv6 without duplicate-address detection); returns the two MACs.
    A namespace that exists already (another lab's, joined on purpose) is used as is."""
    from pyroute2 import IPRoute, NetNS, netns

    for ns, *_ in (a, b):
        if not (NETNS_DIR / ns).exists():
            netns.create(ns)
    with IPRoute() as ipr:
        ipr.link("add", ifname=a[1], kind="veth", peer=b[1])
        for ns, ifname, *_ in (a, b):
            idx = ipr.link_lookup(ifname=ifname)[0]
            ipr.link("set", index=idx, net_ns_fd=ns)
    macs = []
    for ns, ifname, v4, v6 in (a, b):
        with NetNS(ns) as nsr:
            lo = nsr.link_lookup(ifname="lo")[0]
            nsr.link("set", index=lo, state="up")
            idx = nsr.link_lookup(ifname=ifname)[0]
            nsr.addr("add", index=idx, address=v4, prefixlen=v4_prefix)
            nsr.addr("add", index=idx, address=v6, prefixlen=v6_prefix, flags=IFA_F_NODAD)
            nsr.link("set", index=idx, state="up")
            macs.append(str(nsr.get_links(idx)[0].get_attr("IFLA_ADDRESS")))
    return macs[0], macs[1]


@dataclass(eq=False)
class Lab(InNamespaces):
    attacker_ns: str
    victim_ns: str
    attacker_if: str
    victim_if: str
    attacker_mac: str = ""
    victim_mac: str = ""
    attacker_v4: str = ATTACKER_V4
    victim_v4: str = VICTIM_V4
    attacker_v6: str = ATTACKER_V6
    victim_v6: str = VICTIM_V6

    @classmethod
    def create(cls) -> Lab:
        """Build both namespaces and the veth pair; on any failure remove what was made."""
        run_id = next_run_id()
        short = run_id.replace("-", "x")
        lab = cls(
            attacker_ns=f"attacker-{run_id}",
            victim_ns=f"victim-{run_id}",
            attacker_if=f"fta{short}"[:15],
            victim_if=f"ftv{short}"[:15],
        )
        _live.add(lab)
        try:
            lab._build()
        except BaseException:
            lab.destroy()
            raise
        return lab

    def _build(self) -> None:
        self.attacker_mac, self.victim_mac = build_veth_pair(
            (self.attacker_ns, self.attacker_if, self.attacker_v4, self.attacker_v6),
            (self.victim_ns, self.victim_if, self.victim_v4, self.victim_v6),
            V4_PREFIX,
            V6_PREFIX,
        )

    def destroy(self) -> None:
        """Remove both namespaces (which removes the veth pair). Idempotent."""
        from pyroute2 import netns

        for ns in (self.attacker_ns, self.victim_ns):
            if (NETNS_DIR / ns).exists():
                with contextlib.suppress(Exception):
                    netns.remove(ns)
        with contextlib.suppress(Exception):
            from pyroute2 import IPRoute

            with IPRoute() as ipr:  # a half-built pair may still sit in this namespace
                for ifname in (self.attacker_if, self.victim_if):
                    found = ipr.link_lookup(ifname=ifname)
                    if found:
                        ipr.link("del", index=found[0])
        _live.discard(self)

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


def _setns(fd: int) -> None:
    # os.setns exists only from Python 3.12.
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabError(f"setns failed: {os.strerror(err)}")


@contextlib.contextmanager
def enter_netns(ns: str) -> Iterator[None]:
    """setns(2) the calling thread into /run/netns/<ns>, restoring the old one afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def remove_stale() -> list[str]:
    """Remove lab namespaces (Lab, CollateralLab and FleetLab) left by processes that no
    longer exist; returns their names."""
    from pyroute2 import netns

    removed = []
    for name in netns.listnetns():
        role, _, rest = name.partition("-")
        if role not in ("attacker", "victim", "client", "bridge", "control"):
            continue
        pid = rest.split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(Exception):
                netns.remove(name)
                removed.append(name)
    return removed


@atexit.register
def _cleanup_at_exit() -> None:
    for lab in list(_live):
        lab.destroy()

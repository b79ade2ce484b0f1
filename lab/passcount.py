"""How many of one host's packets the victim's stack received AFTER XDP: a tiny tc
ingress program (cls_bpf, direct action, always TC_ACT_OK) on the victim's interface
counts the frames whose Ethernet source is a given MAC (the attacker's; more MACs may
follow, each counted apart: the client's, to see whether XDP dropped any of its
frames), GRO-merged frames by their segment count. XDP runs before tc, so what it counts
is exactly what the XDP program let through; together with what the attacker sent into
the bridge it gives the share of the attack dropped, without guessing which packets were
legitimate.

    with PassCounter.attach(lab.victim_ns, lab.victim_if, lab.attacker_mac) as passed:
        ... flood ...
        passed.read()     # frames from that MAC that reached the stack so far
    PassCounter.attach(ns, ifname, attacker_mac, client_mac).read(client_mac)

This kernel has neither cls_flower nor act_gact (no `tc ... flower ... action pass`
counters), hence the program. The agent's XDP program is untouched; removing the clsact
qdisc (close(), or the namespace going away) removes the counter.
"""

from __future__ import annotations

import contextlib
import errno
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from lab.netns import NETNS_DIR, LabError

_PROGRAM = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/pkt_cls.h>

BPF_ARRAY(passed, u64, MACS);

int count_from_mac(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return TC_ACT_OK;
    unsigned char *s = eth->h_source;
    int which = -1;
    MATCH_MACS
    if (which < 0)
        return TC_ACT_OK;
    u64 *n = passed.lookup(&which);
    if (n) {
        u64 segs = skb->gso_segs ? skb->gso_segs : 1;
        __sync_fetch_and_add(n, segs);
    }
    return TC_ACT_OK;
}
"""
TC_INGRESS_PARENT = 0xFFFFFFF2  # clsact's ingress hook


def _mac_bytes(mac: str) -> list[int]:
    parts = mac.split(":")
    if len(parts) != 6:
        raise LabError(f"mac: expected six colon-separated bytes, got {mac!r}")
    try:
        return [int(p, 16) for p in parts]
    except ValueError:
        raise LabError(f"mac: not hexadecimal: {mac!r}") from None


def _match_macs(macs: tuple[str, ...]) -> str:
    """C that sets `which` to the index of the first of `macs` equal to the source MAC."""
    tests = []
    for i, mac in enumerate(macs):
        same = " && ".join(f"s[{j}] == {b}" for j, b in enumerate(_mac_bytes(mac)))
        tests.append(f"if (which < 0 && {same}) which = {i};")
    return " ".join(tests)


@dataclass
class PassCounter:
    ns: str
    ifname: str
    mac: str
    others: tuple[str, ...] = ()  # more MACs, each counted apart
    _bpf: Any = None

    @classmethod
    def attach(cls, ns: str, ifname: str, mac: str, *others: str) -> PassCounter:
        from bcc import BPF
        from pyroute2 import NetlinkError, NetNS

        from ftagent.bpf.headers import use_kernel_headers

        use_kernel_headers()  # the agent's own way to give bcc this kernel's headers
        macs = (mac, *others)
        program = _PROGRAM.replace("MATCH_MACS", _match_macs(macs))
        counter = cls(ns, ifname, mac, others, BPF(text=program, cflags=[f"-DMACS={len(macs)}"]))
        fn = counter._bpf.load_func("count_from_mac", BPF.SCHED_CLS)
        try:
            with NetNS(ns, flags=0) as nsr:
                found = nsr.link_lookup(ifname=ifname)
                if not found:
                    raise LabError(f"no interface {ifname!r} in namespace {ns!r}")
                try:  # the agent's own clsact (its TC egress program) may be there
                    nsr.tc("add", "clsact", found[0])
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise
                nsr.tc("add-filter", "bpf", found[0], ":1", fd=fn.fd, name=fn.name,
                       parent=TC_INGRESS_PARENT, classid=1, direct_action=True)  # fmt: skip
        except BaseException:
            counter.close()
            raise
        return counter

    def read(self, mac: str | None = None) -> int:
        """Frames from `mac` (default: the first one given) that passed XDP since attach()."""
        macs = [m.lower() for m in (self.mac, *self.others)]
        wanted = self.mac.lower() if mac is None else mac.lower()
        if wanted not in macs:
            raise LabError(f"mac: {mac!r} is not counted here (counted: {', '.join(macs)})")
        table = self._bpf["passed"]
        return int(table[table.Key(macs.index(wanted))].value)

    def close(self) -> None:
        """Remove the clsact qdisc (and the program with it). Idempotent."""
        from pyroute2 import NetNS

        if (NETNS_DIR / self.ns).exists():
            with contextlib.suppress(Exception), NetNS(self.ns, flags=0) as nsr:
                found = nsr.link_lookup(ifname=self.ifname)
                if found:
                    nsr.tc("del", "clsact", found[0])
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> PassCounter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()


_SPREAD_PROGRAM = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/pkt_cls.h>

BPF_ARRAY(counted, u64, DESTS);

int count_by_destination(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return TC_ACT_OK;
    unsigned char *s = eth->h_source;
    if (!(MATCH_SOURCE))
        return TC_ACT_OK;
    unsigned char *d = eth->h_dest;
    int which = -1;
    MATCH_DESTS
    if (which < 0)
        return TC_ACT_OK;
    u64 *n = counted.lookup(&which);
    if (n) {
        u64 segs = skb->gso_segs ? skb->gso_segs : 1;
        __sync_fetch_and_add(n, segs);
    }
    return TC_ACT_OK;
}
"""


def _match_dests(macs: tuple[str, ...]) -> str:
    """C that sets `which` to the index of the first of `macs` equal to the destination."""
    tests = []
    for i, mac in enumerate(macs):
        same = " && ".join(f"d[{j}] == {b}" for j, b in enumerate(_mac_bytes(mac)))
        tests.append(f"if (which < 0 && {same}) which = {i};")
    return " ".join(tests)


@dataclass
class SpreadCounter:
    """Frames from ONE source MAC (the attacker's), counted per destination MAC (one per
    victim), at the tc ingress of any number of interfaces, each in its namespace: one
    program, one count per destination. For a flood sprayed over several hosts: attached
    to the attacker's bridge port it counts what the attacker sent each victim (arrived),
    attached to the victims' own interfaces what passed each one's XDP (each victim only
    receives frames for its own MAC, so one shared count per destination is exact).

        arrived = SpreadCounter.attach([(bridge_ns, attacker_port)], attacker_mac, macs)
        passed = SpreadCounter.attach([(v.ns, v.ifname) for v in victims], attacker_mac, macs)
        arrived.read(victim_mac) - passed.read(victim_mac)   # dropped by XDP
    """

    hooks: tuple[tuple[str, str], ...]  # (namespace, interface)
    source: str
    dests: tuple[str, ...]
    _bpf: Any = None
    _attached: list[tuple[str, str]] | None = None

    @classmethod
    def attach(cls, hooks: list[tuple[str, str]], source: str,
               dests: list[str]) -> SpreadCounter:  # fmt: skip
        from bcc import BPF

        from ftagent.bpf.headers import use_kernel_headers

        if not hooks or not dests:
            raise LabError("SpreadCounter: at least one hook and one destination MAC")
        use_kernel_headers()
        src = " && ".join(f"s[{j}] == {b}" for j, b in enumerate(_mac_bytes(source)))
        program = (_SPREAD_PROGRAM.replace("MATCH_SOURCE", src)
                   .replace("MATCH_DESTS", _match_dests(tuple(dests))))  # fmt: skip
        counter = cls(tuple(hooks), source, tuple(dests),
                      BPF(text=program, cflags=[f"-DDESTS={len(dests)}"]), [])  # fmt: skip
        try:
            fn = counter._bpf.load_func("count_by_destination", BPF.SCHED_CLS)
            for ns, ifname in hooks:
                _attach_ingress(ns, ifname, fn)
                assert counter._attached is not None
                counter._attached.append((ns, ifname))
        except BaseException:
            counter.close()
            raise
        return counter

    def read(self, dest: str) -> int:
        """Frames from the source to `dest` counted at the hooks since attach()."""
        dests = [m.lower() for m in self.dests]
        if dest.lower() not in dests:
            raise LabError(f"mac: {dest!r} is not counted here (counted: {', '.join(dests)})")
        table = self._bpf["counted"]
        return int(table[table.Key(dests.index(dest.lower()))].value)

    def read_all(self) -> dict[str, int]:
        """Every destination's count, by MAC (as given to attach)."""
        table = self._bpf["counted"]
        return {mac: int(table[table.Key(i)].value) for i, mac in enumerate(self.dests)}

    def close(self) -> None:
        """Remove each hook's clsact qdisc (and the program with it). Idempotent."""
        for ns, ifname in self._attached or []:
            _detach_clsact(ns, ifname)
        self._attached = []
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> SpreadCounter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()


def _attach_ingress(ns: str, ifname: str, fn: Any) -> None:
    """Attach program `fn` (direct action) at the tc ingress of `ifname` in `ns`."""
    from pyroute2 import NetlinkError, NetNS

    with NetNS(ns, flags=0) as nsr:
        found = nsr.link_lookup(ifname=ifname)
        if not found:
            raise LabError(f"no interface {ifname!r} in namespace {ns!r}")
        try:  # the agent's own clsact (its TC egress program) may be there
            nsr.tc("add", "clsact", found[0])
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        nsr.tc("add-filter", "bpf", found[0], ":1", fd=fn.fd, name=fn.name,
               parent=TC_INGRESS_PARENT, classid=1, direct_action=True)  # fmt: skip


def _detach_clsact(ns: str, ifname: str) -> None:
    from pyroute2 import NetNS

    if (NETNS_DIR / ns).exists():
        with contextlib.suppress(Exception), NetNS(ns, flags=0) as nsr:
            found = nsr.link_lookup(ifname=ifname)
            if found:
                nsr.tc("del", "clsact", found[0])

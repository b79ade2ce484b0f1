"""How many of one host's packets the victim's stack received AFTER XDP: a tiny tc
ingress program (cls_bpf, direct action, always TC_ACT_OK) on the victim's interface
counts the frames whose Ethernet source is a given MAC (the attacker's), GRO-merged
frames by their segment count. XDP runs before tc, so what it counts is exactly what the
XDP program let through; together with what the attacker sent into the bridge it gives
the share of the attack dropped, without guessing which packets were legitimate.

    with PassCounter.attach(lab.victim_ns, lab.victim_if, lab.attacker_mac) as passed:
        ... flood ...
        passed.read()     # frames from that MAC that reached the stack so far

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

BPF_ARRAY(passed, u64, 1);

int count_from_mac(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return TC_ACT_OK;
    unsigned char *s = eth->h_source;
    if (s[0] != M0 || s[1] != M1 || s[2] != M2 || s[3] != M3 || s[4] != M4 || s[5] != M5)
        return TC_ACT_OK;
    int zero = 0;
    u64 *n = passed.lookup(&zero);
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


@dataclass
class PassCounter:
    ns: str
    ifname: str
    mac: str
    _bpf: Any = None

    @classmethod
    def attach(cls, ns: str, ifname: str, mac: str) -> PassCounter:
        from bcc import BPF
        from pyroute2 import NetlinkError, NetNS

        from ftagent.bpf.headers import use_kernel_headers

        use_kernel_headers()  # the agent's own way to give bcc this kernel's headers
        cflags = [f"-DM{i}={b}" for i, b in enumerate(_mac_bytes(mac))]
        counter = cls(ns, ifname, mac, BPF(text=_PROGRAM, cflags=cflags))
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

    def read(self) -> int:
        """Frames from `mac` that passed XDP since attach()."""
        table = self._bpf["passed"]
        return int(table[table.Key(0)].value)

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

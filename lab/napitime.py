"""The CPU time the kernel spends receiving on one interface: the time of its NAPI polls
(for the collateral lab's victim veth, which runs NAPI because XDP is attached: the XDP
program for every frame, and the victim's whole stack for what XDP passes, down to
handing its answers to the veth peer).

This kernel has neither kprobes nor fentry and no tracefs mounted, and its /proc/stat
softirq time is sampled by the tick for the whole machine (CONFIG_IRQ_TIME_ACCOUNTING is
off; the other tenants of a shared machine show up in it). So the time is taken from
two raw tracepoints, which need neither: on each CPU, `softirq_entry` of NET_RX starts a
mark, and every `napi_poll` (fired as a poll ends) charges the time since the last mark
to that poll's device, then moves the mark. Polls of one NET_RX softirq run one after
the other on its CPU, so each poll's share is its own time plus a little of
net_rx_action's own bookkeeping.

    with NapiTime.attach(lab.victim_if) as napi:
        before = napi.read()      # NapiTotals(ns, polls, frames)
        ...
        after = napi.read()
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from lab.netns import LabError

_PROGRAM = r"""
#include <linux/netdevice.h>

BPF_PERCPU_ARRAY(mark, u64, 1);
BPF_ARRAY(totals, u64, 3);  // ns, polls, frames

RAW_TRACEPOINT_PROBE(softirq_entry) {
    unsigned int vec = (unsigned int)ctx->args[0];
    if (vec != NET_RX_SOFTIRQ)
        return 0;
    int zero = 0;
    u64 now = bpf_ktime_get_ns();
    mark.update(&zero, &now);
    return 0;
}

RAW_TRACEPOINT_PROBE(napi_poll) {
    int zero = 0, one = 1, two = 2;
    u64 *since = mark.lookup(&zero);
    if (!since || !*since)
        return 0;
    u64 now = bpf_ktime_get_ns();
    u64 spent = now - *since;
    *since = now;
    // the running kernel's offsets (from its BTF), not the build headers' (which may be
    // another version's): napi_struct.dev, net_device.name
    char *napi = (char *)ctx->args[0];
    char *dev = NULL;
    bpf_probe_read_kernel(&dev, sizeof(dev), napi + NAPI_DEV_OFFSET);
    if (!dev)
        return 0;
    char name[IFNAMSIZ] = {};
    bpf_probe_read_kernel(&name, sizeof(name), dev + DEV_NAME_OFFSET);
    WANTED_NAME
    u64 *ns = totals.lookup(&zero);
    if (ns)
        __sync_fetch_and_add(ns, spent);
    u64 *polls = totals.lookup(&one);
    if (polls)
        __sync_fetch_and_add(polls, 1);
    u64 *frames = totals.lookup(&two);
    if (frames)
        __sync_fetch_and_add(frames, (u64)(int)ctx->args[1]);
    return 0;
}
"""
IFNAMSIZ = 16
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


@functools.cache
def _btf_lines(btf: str) -> tuple[str, ...]:
    """bpftool's raw dump of `btf` (read once: it is the running kernel's, several MB)."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", btf, "format", "raw"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return tuple(out.splitlines())


def member_offset(struct: str, member: str, btf: str = VMLINUX_BTF) -> int:
    """Byte offset of `member` in the running kernel's `struct` (bpftool's raw dump of
    its BTF: a "STRUCT 'name' size=.. vlen=N" line, then N member lines)."""
    lines = _btf_lines(btf)
    head = f"STRUCT '{struct}' size="
    for i, line in enumerate(lines):
        if head not in line:
            continue
        vlen = int(line.rsplit("vlen=", 1)[1])
        for m in lines[i + 1 : i + 1 + vlen]:
            if m.strip().startswith(f"'{member}' ") and "bits_offset=" in m:
                bits = int(m.rsplit("bits_offset=", 1)[1].split()[0])
                return bits // 8
        raise LabError(f"{struct} has no member {member!r} in {btf}")
    raise LabError(f"no struct {struct!r} in {btf}")


@dataclass(frozen=True, slots=True)
class NapiTotals:
    """Cumulative NAPI work of the interface since attach()."""

    ns: int  # time spent in its polls
    polls: int
    frames: int  # frames its polls handled (the `work` they reported)

    def __sub__(self, other: NapiTotals) -> NapiTotals:
        return NapiTotals(self.ns - other.ns, self.polls - other.polls,
                          self.frames - other.frames)  # fmt: skip


def _name_test(ifname: str) -> str:
    """C that returns from the probe unless `name` is `ifname` (NUL included)."""
    raw = ifname.encode()
    if not raw or len(raw) >= IFNAMSIZ or not raw.isascii():
        raise LabError(f"ifname: 1..{IFNAMSIZ - 1} ASCII characters, got {ifname!r}")
    checks = " || ".join(f"name[{i}] != {b}" for i, b in enumerate([*raw, 0]))
    return f"if ({checks}) return 0;"


@dataclass
class NapiTime:
    ifname: str
    _bpf: Any = None

    @classmethod
    def attach(cls, ifname: str) -> NapiTime:
        """Start counting `ifname`'s NAPI polls (any namespace: names are compared, so
        give a name that is unique on the machine, as the lab's are)."""
        from bcc import BPF

        from ftagent.bpf.headers import use_kernel_headers

        use_kernel_headers()
        program = _PROGRAM.replace("WANTED_NAME", _name_test(ifname))
        cflags = [f"-DNAPI_DEV_OFFSET={member_offset('napi_struct', 'dev')}",
                  f"-DDEV_NAME_OFFSET={member_offset('net_device', 'name')}"]  # fmt: skip
        return cls(ifname, BPF(text=program, cflags=cflags))  # raw tracepoints attach themselves

    def read(self) -> NapiTotals:
        table = self._bpf["totals"]
        ns, polls, frames = (int(table[table.Key(i)].value) for i in range(3))
        return NapiTotals(ns, polls, frames)

    def close(self) -> None:
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> NapiTime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

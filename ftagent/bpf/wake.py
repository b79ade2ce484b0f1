"""Wake-ups from the kernel: a short slot was hot, so the agent need not wait for its poll.

The XDP program counts packets per CPU in slots of 2^FT_WAKE_SLOT_SHIFT ns of the coarse
clock (about 8.4 ms); when one CPU's count in a slot reaches `ft_config.wake_slot_packets`,
it sends one `struct ft_wake` through the `wakes` buffer (bpf/ftshared.h). `WakeBuffer`
sets that count from a packet rate and blocks on the buffer (epoll inside libbpf; the GIL
is released while it waits), in a thread of the agent's own.
"""

from __future__ import annotations

import errno
import math
import os
import threading
from typing import Any

from ftagent.bpf import libbpf
from ftagent.bpf.libbpf import RingBuffer
from ftagent.bpf.tables import Tables
from ftagent.datapath import Wake

# bpf/ftshared.h FT_WAKE_SLOT_SHIFT (tests/bpf/test_layout.py checks the mirror).
WAKE_SLOT_SHIFT = 23
WAKE_SLOT_NS = 1 << WAKE_SLOT_SHIFT
MAX_SLOT_PACKETS = (1 << 32) - 1


def slot_packets(pps: float, cpus: int) -> int:
    """The per-CPU count per slot for a total rate of `pps` spread over `cpus` CPUs (0:
    off). Rounded up, at least 1: a rate that reaches it on every CPU reaches `pps`; a rate
    that lands on fewer CPUs wakes the agent sooner, which costs it one window."""
    if pps <= 0:
        return 0
    return min(MAX_SLOT_PACKETS, max(1, math.ceil(pps * WAKE_SLOT_NS / 1e9 / max(1, cpus))))


class WakeBuffer:
    """The `wakes` buffer of one pinned build and the count that fills it."""

    def __init__(self, tables: Tables, *, perf_buffer: bool) -> None:
        self._t = tables
        self._perf = perf_buffer
        self._record: Any = tables["wake_layout"].Leaf  # struct ft_wake
        self._cpus = libbpf.num_possible_cpus()
        self._buffer: RingBuffer | None = None
        self._fd = -1
        self._got: list[Wake] = []
        # wait() and close() run in different threads: libbpf's buffer is freed only
        # when no wait is inside it, and never used after.
        self._lock = threading.Lock()
        self._closed = False

    def set_pps(self, pps: float) -> int:
        """Wake at about `pps` (0: off); returns the per-CPU count per slot written."""
        n = slot_packets(pps, self._cpus)
        self._t.update_config(lambda c: setattr(c, "wake_slot_packets", n))
        return n

    def slot_packets(self) -> int:
        return int(self._t.config().wake_slot_packets)

    def _on_wake(self, address: int) -> int:
        w = self._record.from_address(address)
        self._got.append(Wake(int(w.slot_ns), int(w.at_ns), int(w.cpu), int(w.packets)))
        return 0

    def wait(self, timeout_s: float) -> list[Wake]:
        """The wake-ups that came within `timeout_s` (all that are there once one came)."""
        with self._lock:
            if self._closed:
                raise libbpf.BpfError(errno.EBADF, "the wake-up buffer is closed")
            if self._buffer is None:
                self._fd = self._t.fd("wakes")
                self._buffer = RingBuffer(self._fd, self._on_wake, perf_buffer=self._perf,
                                          perf_pages=1)
            self._buffer.poll(max(0, int(timeout_s * 1000)))
            got, self._got = self._got, []
            return got

    def close(self) -> None:
        """Free libbpf's buffer once no wait is inside it; later waits raise BpfError."""
        with self._lock:
            self._closed = True
            self._close_buffer()

    def _close_buffer(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

"""Packet samples: the rate (1 in N, config map) and the sample buffer (a BPF ring
buffer, or a perf buffer on kernels without one) drained without blocking."""

from __future__ import annotations

import os
from typing import Any

from ftagent.bpf.libbpf import RingBuffer
from ftagent.bpf.tables import Tables
from ftagent.datapath import VERDICTS, Sample


class Sampler:
    def __init__(self, tables: Tables, *, perf_buffer: bool) -> None:
        self._t = tables
        self._perf = perf_buffer
        # struct ft_sample, carried by the sample_layout map (the buffer has no types)
        self._record: Any = tables["sample_layout"].Leaf
        self._buffer: RingBuffer | None = None
        self._fd = -1
        self._pending: list[Sample] = []
        self._max_pending = 0

    def set_rate(self, one_in: int) -> None:
        if one_in < 0:
            raise ValueError(f"sample rate must be >= 0, got {one_in}")
        self._t.update_config(lambda c: setattr(c, "sample_one_in", one_in))

    def _on_sample(self, address: int) -> int:
        event = self._record.from_address(address)
        cap = min(int(event.cap_len), len(event.data))
        self._pending.append(
            Sample(
                timestamp_ns=int(event.timestamp_ns),
                wire_len=int(event.wire_len),
                verdict=VERDICTS[event.verdict] if event.verdict < len(VERDICTS) else "passed",
                data=bytes(event.data)[:cap],
            )
        )
        # Nonzero stops the ring-buffer drain; the rest stays for next time.
        return -1 if len(self._pending) >= self._max_pending else 0

    def poll(self, max_items: int = 4096) -> list[Sample]:
        if self._buffer is None:
            self._fd = self._t.fd("samples")
            self._buffer = RingBuffer(self._fd, self._on_sample, perf_buffer=self._perf)
        self._max_pending = max_items
        if len(self._pending) < max_items:
            self._buffer.consume()
        out, self._pending = self._pending[:max_items], self._pending[max_items:]
        return out

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


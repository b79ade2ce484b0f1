"""Top sources: the LRU maps top_v4/top_v6 plus what their per-CPU front caches
(top_cache_v4/v6, ftshared.h struct ft_src_slot_v4) still hold, read, aged and admitted.

Under a flood the maps hold tens of thousands of sources and the agent wants the busiest
twenty: the maps are read as raw bytes in batch calls and summed over CPUs through the
layout's field offsets, so a read makes no Python object per source and CPU, only a
small tuple per distinct address.
"""

from __future__ import annotations

import ctypes as ct
import heapq
import ipaddress
import operator
from collections.abc import Callable
from typing import Any

from ftagent.bpf.table import Table
from ftagent.bpf.tables import Tables
from ftagent.datapath import SourceStat

FAMILIES = (("top_v4", "top_cache_v4"), ("top_v6", "top_cache_v6"))
U64 = 8

# address bytes (network order) -> (packets, bytes, last_seen_ns, in the map)
Totals = dict[bytes, tuple[int, int, int, bool]]


def _u64_fields(leaf: Any, names: tuple[str, ...]) -> list[int]:
    """Offsets (in u64 units) of u64 fields of one CPU's value."""
    offsets = []
    for name in names:
        field = getattr(leaf, name)
        if field.size != U64 or field.offset % U64:
            raise ValueError(f"{leaf.__name__}.{name} is not an aligned u64")
        offsets.append(field.offset // U64)
    return offsets


def _per_cpu_values(table: Table) -> tuple[int, int]:
    """(u64 words per CPU, CPUs) of a per-CPU map's values."""
    return ct.sizeof(table.sLeaf) // U64, ct.sizeof(table.Leaf) // ct.sizeof(table.sLeaf)


class _MapRead:
    """One read of a per-CPU top-sources map as raw bytes, with its fields summed (or
    maxed) over CPUs column by column: C-speed slices and maps over whole columns, no
    Python object per source and CPU."""

    def __init__(self, table: Table) -> None:
        keys, values, self.count = table.raw_items()
        self.ksize = ct.sizeof(table.Key)
        self.keys = keys
        self.words, self.cpus = _per_cpu_values(table)
        self.q = memoryview(values).cast("Q")
        self.pk, self.by, self.ls = _u64_fields(table.sLeaf, ("packets", "bytes", "last_seen_ns"))

    def column(self, field: int, combine: Callable[[int, int], int]) -> list[int]:
        """`field` of every entry, combined over CPUs (operator.add or max)."""
        stride = self.words * self.cpus
        end = self.count * stride
        out: list[int] = self.q[field:end:stride].tolist()
        for c in range(1, self.cpus):
            out = list(map(combine, out, self.q[c * self.words + field:end:stride].tolist()))
        return out

    def key(self, j: int) -> bytes:
        return self.keys[j * self.ksize:(j + 1) * self.ksize]

    def index(self) -> dict[bytes, int]:
        return {self.key(j): j for j in range(self.count)}

    def totals(self, j: int) -> tuple[int, int, int]:
        """(packets, bytes, last seen) of entry `j` over every CPU."""
        base = j * self.words * self.cpus
        bases = range(base, base + self.words * self.cpus, self.words)
        q = self.q
        return (sum(q[c + self.pk] for c in bases), sum(q[c + self.by] for c in bases),
                max(q[c + self.ls] for c in bases))


class TopSources:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def _cache_totals(self, cache: str) -> Totals:
        """What the front cache's slots hold and the map does not have yet, by address
        (a few hundred slots; `in the map` is left False for the caller to settle)."""
        table = self._t[cache]
        _, values, count = table.raw_items()
        words, cpus = _per_cpu_values(table)
        pk, by, ls, seen = _u64_fields(table.sLeaf, ("packets", "bytes", "last_seen_ns", "seen"))
        addr = table.sLeaf.addr
        q = memoryview(values).cast("Q")
        totals: Totals = {}
        for c in range(0, count * cpus * words, words):
            if q[c + seen] and q[c + pk]:
                key = values[c * U64 + addr.offset:c * U64 + addr.offset + addr.size]
                packets, nbytes, last, _ = totals.get(key, (0, 0, 0, False))
                totals[key] = (packets + q[c + pk], nbytes + q[c + by], max(last, q[c + ls]),
                               False)
        return totals

    def _family_top(self, name: str, cache: str, limit: int) -> Totals:
        """The candidates for the `limit` busiest sources of one family: the map's
        `limit` busiest by its own counts, and every address the cache holds (with the
        map's counts added). A source outside both cannot be among the busiest: only
        cached sources have counts beyond the map's."""
        read = _MapRead(self._t[name])
        cached = self._cache_totals(cache)
        packets = read.column(read.pk, operator.add)
        out: Totals = {}
        for j in heapq.nlargest(limit, range(read.count), key=packets.__getitem__):
            p, b, last = read.totals(j)
            out[read.key(j)] = (p, b, last, True)
        if cached:
            index = read.index()
            for a, (p, b, last, _) in cached.items():
                at = index.get(a)
                if at is None:
                    out[a] = (p, b, last, False)
                    continue
                mp, mb, ml = read.totals(at)
                out[a] = (mp + p, mb + b, max(ml, last), True)
        return out

    def top(self, limit: int) -> list[SourceStat]:
        limit = max(0, limit)
        best = heapq.nlargest(
            limit,
            ((t[0], t[1], a, t[2]) for name, cache in FAMILIES
             for a, t in self._family_top(name, cache, limit).items()),
        )  # fmt: skip
        return [SourceStat(address=ipaddress.ip_address(a), packets=p, bytes=b, last_seen_ns=t)
                for p, b, a, t in best]

    def age(self, older_than_ns: int) -> int:
        """Delete the sources not seen since `older_than_ns`; returns how many."""
        stale: set[bytes] = set()
        for name, cache in FAMILIES:
            table = self._t[name]
            read = _MapRead(table)
            cached = self._cache_totals(cache)
            last = read.column(read.ls, max)
            fresh_cached = {a for a, t in cached.items() if t[2] >= older_than_ns}
            for j in [j for j, seen in enumerate(last) if seen < older_than_ns]:
                addr = read.key(j)
                if addr in fresh_cached:  # its cache copy saw it lately
                    continue
                stale.add(addr)
                try:
                    del table[table.Key.from_buffer_copy(addr)]
                except KeyError:  # the LRU or another reader deleted it meanwhile
                    continue
            in_map = read.index() if cached else {}
            stale.update(a for a, t in cached.items()
                         if t[2] < older_than_ns and a not in in_map)
        # The cache copies of the same sources go too (else their counts would bring the
        # source back). The slot is rewritten for every CPU at once: a copy another
        # source updates between the read and the write loses those packets, the same
        # race as deleting a map entry the program is counting into.
        if stale:
            for _, cache in FAMILIES:
                self._forget_cached(self._t[cache], stale)
        return len(stale)

    @staticmethod
    def _forget_cached(table: Table, addresses: set[bytes]) -> None:
        addr = table.sLeaf.addr  # the field: its bytes, not its value (a __u32 for v4)
        for key, per_cpu in table.items():
            copies = [slot for slot in per_cpu if slot.seen and ct.string_at(
                ct.addressof(slot) + addr.offset, addr.size) in addresses]
            for slot in copies:
                ct.memset(ct.addressof(slot), 0, ct.sizeof(slot))
            if copies:
                table[key] = per_cpu

    def set_insert_rate(self, one_in: int) -> None:
        """Admit a not-yet-tracked source on 1 in `one_in` of its packets."""
        if one_in < 0:
            raise ValueError(f"insert rate must be >= 0, got {one_in}")
        self._t.update_config(lambda c: setattr(c, "src_insert_one_in", one_in))

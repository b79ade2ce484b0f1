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
from collections.abc import Iterator
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


class TopSources:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def _map_totals(self, name: str, totals: Totals) -> None:
        """Add each source of map `name`, summed over CPUs, to `totals`."""
        table = self._t[name]
        keys, values, count = table.raw_items()
        ksize = ct.sizeof(table.Key)
        words, cpus = _per_cpu_values(table)
        pk, by, ls = _u64_fields(table.sLeaf, ("packets", "bytes", "last_seen_ns"))
        q = memoryview(values).cast("Q")
        for j in range(count):
            base = j * words * cpus
            cpu_bases = range(base, base + words * cpus, words)
            totals[keys[j * ksize:(j + 1) * ksize]] = (
                sum(q[c + pk] for c in cpu_bases),
                sum(q[c + by] for c in cpu_bases),
                max(q[c + ls] for c in cpu_bases),
                True,
            )

    def _cache_totals(self, cache: str, totals: Totals) -> None:
        """Add what the front cache's slots hold and the map does not have yet."""
        table = self._t[cache]
        _, values, count = table.raw_items()
        words, cpus = _per_cpu_values(table)
        pk, by, ls, seen = _u64_fields(table.sLeaf, ("packets", "bytes", "last_seen_ns", "seen"))
        addr = table.sLeaf.addr
        q = memoryview(values).cast("Q")
        for c in range(0, count * cpus * words, words):
            if q[c + seen] and q[c + pk]:
                key = values[c * U64 + addr.offset:c * U64 + addr.offset + addr.size]
                packets, nbytes, last, in_map = totals.get(key, (0, 0, 0, False))
                totals[key] = (packets + q[c + pk], nbytes + q[c + by],
                               max(last, q[c + ls]), in_map)

    def _totals(self) -> Iterator[tuple[str, Totals]]:
        for name, cache in FAMILIES:
            totals: Totals = {}
            self._map_totals(name, totals)
            self._cache_totals(cache, totals)
            yield name, totals

    def top(self, limit: int) -> list[SourceStat]:
        best = heapq.nlargest(
            max(0, limit),
            ((t[0], t[1], a, t[2]) for _, totals in self._totals() for a, t in totals.items()),
        )
        return [SourceStat(address=ipaddress.ip_address(a), packets=p, bytes=b, last_seen_ns=t)
                for p, b, a, t in best]

    def age(self, older_than_ns: int) -> int:
        """Delete the sources not seen since `older_than_ns`; returns how many."""
        stale: set[bytes] = set()
        for name, totals in self._totals():
            table = self._t[name]
            for addr, (_, _, last, in_map) in totals.items():
                if last >= older_than_ns:
                    continue
                stale.add(addr)
                if in_map:
                    try:
                        del table[table.Key.from_buffer_copy(addr)]
                    except KeyError:  # the LRU or another reader deleted it meanwhile
                        continue
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

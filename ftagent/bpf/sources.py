"""Top sources: the LRU maps top_v4/top_v6 plus what their per-CPU front caches
(top_cache_v4/v6, ftshared.h struct ft_src_slot_v4) still hold, read, aged and admitted."""

from __future__ import annotations

import ctypes as ct
import ipaddress
from collections.abc import Iterator
from typing import Any

from ftagent.bpf.tables import Tables, u32_addr, v6_addr
from ftagent.datapath import IPAddress, SourceStat

FAMILIES = (("top_v4", "top_cache_v4"), ("top_v6", "top_cache_v6"))


def _source_address(table: str, key: Any) -> IPAddress:
    """The address of a top_v4 / top_v6 key."""
    return u32_addr(key.value) if table == "top_v4" else v6_addr(key.addr)


def _slot_address(cache: str, slot: Any) -> IPAddress:
    """The address of a top_cache_v4 / top_cache_v6 slot."""
    if cache == "top_cache_v4":
        return u32_addr(slot.addr)
    return ipaddress.IPv6Address(bytes(slot.addr.addr))


class TopSources:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def _sources(self) -> Iterator[tuple[str, Any, IPAddress, int, int, int]]:
        """(map, key or None, address, packets, bytes, last_seen_ns) per tracked source:
        the map's figures plus the counts still in the front cache. key is None for a
        source only the cache holds (the LRU evicted it since its last flush)."""
        for name, cache in FAMILIES:
            merged: dict[IPAddress, list[Any]] = {}
            for key, per_cpu in self._t[name].items():
                merged[_source_address(name, key)] = [
                    key,
                    sum(v.packets for v in per_cpu),
                    sum(v.bytes for v in per_cpu),
                    max(v.last_seen_ns for v in per_cpu),
                ]
            for slot, addr in self._cached(cache):
                entry = merged.setdefault(addr, [None, 0, 0, 0])
                entry[1] += slot.packets
                entry[2] += slot.bytes
                entry[3] = max(entry[3], slot.last_seen_ns)
            for addr, (key, packets, nbytes, last) in merged.items():
                yield name, key, addr, packets, nbytes, last

    def _cached(self, cache: str) -> Iterator[tuple[Any, IPAddress]]:
        """(per-CPU slot value, address) for every front-cache slot copy holding counts
        not yet added into the map."""
        for _, per_cpu in self._t[cache].items():
            for slot in per_cpu:
                if slot.seen and slot.packets:
                    yield slot, _slot_address(cache, slot)

    def top(self, limit: int) -> list[SourceStat]:
        stats = [
            SourceStat(address=a, packets=p, bytes=b, last_seen_ns=t)
            for _, _, a, p, b, t in self._sources()
        ]
        stats.sort(key=lambda s: (s.packets, s.bytes), reverse=True)
        return stats[: max(0, limit)]

    def age(self, older_than_ns: int) -> int:
        """Delete the sources not seen since `older_than_ns`; returns how many."""
        stale: dict[str, list[Any]] = {"top_v4": [], "top_v6": []}
        stale_addresses: set[IPAddress] = set()
        for name, key, addr, _, _, last in self._sources():
            if last < older_than_ns:
                stale_addresses.add(addr)
                if key is not None:
                    stale[name].append(key)
        for name, keys in stale.items():
            table = self._t[name]
            for key in keys:
                try:
                    del table[key]
                except KeyError:  # the LRU or another reader deleted it meanwhile
                    continue
        # The cache copies of the same sources go too (else their counts would bring the
        # source back). The slot is rewritten for every CPU at once: a copy another
        # source updates between the read and the write loses those packets, the same
        # race as deleting a map entry the program is counting into.
        if not stale_addresses:
            return 0
        for _, cache in FAMILIES:
            table = self._t[cache]
            for key, per_cpu in table.items():
                stale_copies = [
                    slot
                    for slot in per_cpu
                    if slot.seen and _slot_address(cache, slot) in stale_addresses
                ]
                for slot in stale_copies:
                    ct.memset(ct.addressof(slot), 0, ct.sizeof(slot))
                if stale_copies:
                    table[key] = per_cpu
        return len(stale_addresses)

    def set_insert_rate(self, one_in: int) -> None:
        """Admit a not-yet-tracked source on 1 in `one_in` of its packets."""
        if one_in < 0:
            raise ValueError(f"insert rate must be >= 0, got {one_in}")
        self._t.update_config(lambda c: setattr(c, "src_insert_one_in", one_in))

"""One pinned map, typed: the few operations of bcc's table objects that the data path's
modules use (Key, Leaf, lookup, update, delete, walk), over plain bpf(2) calls.

Per-CPU maps: `sLeaf` is one CPU's value, `Leaf` the array of every possible CPU's
(what the kernel reads and writes for a per-CPU map), as in bcc.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
from collections.abc import Iterator
from typing import Any

from ftagent.bpf import libbpf
from ftagent.bpf.layout import LayoutError, MapLayout, build

# enum bpf_map_type values whose lookups return one value per possible CPU.
PER_CPU_TYPES = frozenset({5, 6, 10})  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH
ARRAY_TYPES = frozenset({2, 6})  # ARRAY, PERCPU_ARRAY: elements always exist


class Table:
    """A map opened from its pin (the fd is ours until close())."""

    def __init__(self, fd: int, layout: MapLayout) -> None:
        if layout.key is None or layout.value is None:
            raise LayoutError(f"map {layout.name} has no key/value types")
        self.fd = fd
        self.name = layout.name
        self.max_entries = layout.max_entries
        self.Key: Any = build(layout.key)
        self.sLeaf: Any = build(layout.value)
        self._is_array = layout.map_type in ARRAY_TYPES
        if layout.per_cpu:
            if ct.sizeof(self.sLeaf) % 8:
                raise LayoutError(f"{layout.name}: per-CPU values must be 8-byte multiples")
            self.Leaf: Any = self.sLeaf * libbpf.num_possible_cpus()
        else:
            self.Leaf = self.sLeaf

    def _key(self, key: Any) -> Any:
        return self.Key(key) if isinstance(key, int) else key

    def __getitem__(self, key: Any) -> Any:
        value = self.Leaf()
        if not libbpf.map_lookup(self.fd, self._key(key), value):
            raise KeyError(key)
        return value

    def getvalue(self, key: Any) -> Any:
        """The value at `key` (per-CPU maps: one element per possible CPU)."""
        return self[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        libbpf.map_update(self.fd, self._key(key), value)

    def __delitem__(self, key: Any) -> None:
        if self._is_array:  # array elements cannot be deleted: zero them
            self[key] = self.Leaf()
            return
        if not libbpf.map_delete(self.fd, self._key(key)):
            raise KeyError(key)

    def keys(self) -> Iterator[Any]:
        key: Any = None
        while True:
            nxt = self.Key()
            if not libbpf.map_next_key(self.fd, key, nxt):
                return
            yield nxt
            key = nxt

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def __len__(self) -> int:
        return self.max_entries if self._is_array else sum(1 for _ in self.keys())

    def raw_items(self) -> tuple[bytes, bytes, int]:
        """(keys, values, count): every entry's key and value bytes back to back, with
        batch calls where the kernel has them for this map (no Python object per entry)."""
        ksize, vsize = ct.sizeof(self.Key), ct.sizeof(self.Leaf)
        try:
            return libbpf.map_lookup_batch(self.fd, ksize, vsize, self.max_entries)
        except libbpf.BpfError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, 524):  # 524: ENOTSUPP
                raise
        keys, values = bytearray(), bytearray()
        for key in list(self.keys()):
            try:
                value = self[key]
            except KeyError:  # deleted meanwhile
                continue
            keys += bytes(key)
            values += bytes(value)
        return bytes(keys), bytes(values), len(keys) // ksize

    def items(self) -> list[tuple[Any, Any]]:
        """Every (key, value) as ctypes objects."""
        keys, values, count = self.raw_items()
        ksize, vsize = ct.sizeof(self.Key), ct.sizeof(self.Leaf)
        return [(self.Key.from_buffer_copy(keys, j * ksize),
                 self.Leaf.from_buffer_copy(values, j * vsize)) for j in range(count)]

    def clear(self) -> None:
        if self._is_array:
            empty = self.Leaf()
            for i in range(self.max_entries):
                self[i] = empty
            return
        for key in list(self.keys()):
            libbpf.map_delete(self.fd, key)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

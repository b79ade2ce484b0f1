"""The data path's maps opened from one pin directory: name -> `Table`."""

from __future__ import annotations

import contextlib
import ctypes as ct
import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftagent.bpf import libbpf
from ftagent.bpf.pins import Manifest
from ftagent.bpf.table import Table


class Tables:
    """Every typed map of a manifest, opened by path (close() releases the fds)."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        self._tables: dict[str, Table] = {}
        try:
            for layout in manifest.maps:
                if layout.key is not None:
                    self._tables[layout.name] = Table(libbpf.obj_get(path / layout.name),
                                                      layout)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> Table:
        return self._tables[name]

    def fd(self, name: str) -> int:
        """A new fd for a map without a table (the sample buffer); the caller closes it."""
        return libbpf.obj_get(self.path / name)

    def update_config(self, fn: Callable[[Any], None]) -> None:
        """Read-modify-write the one element of the config map (struct ft_config)."""
        table = self["config"]
        leaf = table[0]
        fn(leaf)
        table[0] = leaf

    def config(self) -> Any:
        return self["config"][0]

    def close(self) -> None:
        for table in self._tables.values():
            with contextlib.suppress(OSError):
                table.close()
        self._tables.clear()


def u32_key(addr: ipaddress.IPv4Address) -> int:
    """A network-order IPv4 address as the host-order integer bcc stores in a __u32 key."""
    return int.from_bytes(addr.packed, sys.byteorder)


def u32_addr(value: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(value).to_bytes(4, sys.byteorder))


def v6_addr(array: Any) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(bytes(array))


def bytes_into(array: Any, data: bytes) -> None:
    ct.memmove(ct.addressof(array), data, len(data))


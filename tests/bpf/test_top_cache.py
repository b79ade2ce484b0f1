"""Top sources' per-CPU front cache (bpf/ftshared.h, struct ft_src_slot_v4): counts that
sit in a cache slot, are flushed into the LRU map, or belong to a source the map evicted
are all reported, exactly, and aged like the rest. BPF_PROG_TEST_RUN on the real kernel."""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Callable

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from .conftest import Prog

pytestmark = [pytest.mark.kernel]

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
CACHE_BITS = 8  # FT_TOP_CACHE_BITS
HASH_MUL = 0x9E3779B1  # FT_HASH_MUL in bpf/ftxdp.c


def v4(src: str) -> bytes:
    return bytes(ETH / IP(src=src, dst="203.0.113.9") / UDP(sport=4000, dport=9) / Raw(b"x" * 30))


def v6(src: str) -> bytes:
    return bytes(
        ETH / IPv6(src=src, dst="2001:db8:1::9") / UDP(sport=4000, dport=9) / Raw(b"y" * 30)
    )


def slot_v4(address: str) -> int:
    """The program's slot for an IPv4 source (its __u32 load of the network-order bytes)."""
    word = int.from_bytes(ipaddress.IPv4Address(address).packed, sys.byteorder)
    return ((word * HASH_MUL) & 0xFFFFFFFF) >> (32 - CACHE_BITS)


def slot_v6(address: str) -> int:
    packed = ipaddress.IPv6Address(address).packed
    folded = 0
    for i in range(0, 16, 4):
        folded ^= int.from_bytes(packed[i : i + 4], sys.byteorder)
    return ((folded * HASH_MUL) & 0xFFFFFFFF) >> (32 - CACHE_BITS)


def colliding(slot_of: Callable[[str], int], make: Callable[[int], str], first: str) -> str:
    """Another address (make(i)) with the same slot as `first`."""
    for i in range(1, 1 << 16):
        other = make(i)
        if other != first and slot_of(other) == slot_of(first):
            return other
    raise AssertionError("no colliding address found")


def counts(prog: Prog) -> dict[str, int]:
    return {str(s.address): s.packets for s in prog.maps.top_sources(1000)}


@pytest.fixture
def empty(prog: Prog) -> Prog:
    prog.maps.age_sources(time.monotonic_ns() + 10**9)
    assert prog.maps.top_sources(10) == []
    return prog


def test_sources_sharing_a_slot_are_counted_exactly(empty: Prog) -> None:
    a = "192.0.2.10"
    b = colliding(slot_v4, lambda i: f"10.{i >> 8}.{i & 255}.1", a)
    assert slot_v4(a) == slot_v4(b)
    for src, n in ((a, 100), (b, 70), (a, 30), (b, 1), (a, 200)):  # crosses flushes (64)
        empty.run(v4(src), repeat=n)
    assert counts(empty) == {a: 330, b: 71}
    x6 = "2001:db8::10"
    y6 = colliding(slot_v6, lambda i: f"2001:db8::{i:x}", x6)
    for src, n in ((x6, 90), (y6, 5), (x6, 3)):
        empty.run(v6(src), repeat=n)
    assert counts(empty) == {a: 330, b: 71, x6: 93, y6: 5}


def test_a_source_the_map_evicted_is_admitted_again_with_its_cached_counts(empty: Prog) -> None:
    src = "192.0.2.20"
    empty.run(v4(src), repeat=10)  # 2 packets counted in the map, then 8 in its slot
    table = empty.maps.tables["top_v4"]
    del table[table.Key(int.from_bytes(ipaddress.IPv4Address(src).packed, sys.byteorder))]
    assert counts(empty) == {src: 8}  # as the LRU evicting it would: its cached 8 remain
    empty.run(v4(src), repeat=100)  # the slot's flush admits it again
    assert counts(empty) == {src: 108}
    assert len(table) == 1


def test_ageing_removes_a_source_held_only_by_the_cache(empty: Prog) -> None:
    src = "192.0.2.30"
    empty.run(v4(src), repeat=10)
    table = empty.maps.tables["top_v4"]
    del table[table.Key(int.from_bytes(ipaddress.IPv4Address(src).packed, sys.byteorder))]
    assert empty.maps.age_sources(time.monotonic_ns() - 60 * 10**9) == 0  # still fresh
    assert empty.maps.age_sources(time.monotonic_ns() + 10**9) == 1
    assert empty.maps.top_sources(10) == []
    empty.run(v4(src), repeat=3)  # back as a new source: nothing from before
    assert counts(empty) == {src: 3}

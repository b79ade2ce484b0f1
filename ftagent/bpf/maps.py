"""Typed access to the data path's maps (layouts from bpf/ftshared.h via bcc's Key/Leaf).

`DatapathMaps` works on any compiled `bcc.BPF` holding the tables of bpf/ftmaps.h: the
loaded XDP program (the agent) or the maps-only view over the agent's pinned maps
(`ftagent rules|block|unblock`). It implements every read/write of the `Datapath`
protocol except attaching.

Concurrency: the agent and a CLI process may write the same maps. Adds and removes are
single map updates; the `n_*` hints in the config map only ever err on the side of
"look it up". Two processes adding a new rule at the same instant may pick the same
per-rule counter slot (the counters are then shared); nothing is dropped wrongly.

Why one module over 400 lines: it is the Python mirror of bpf/ftmaps.h, map by map, and
tests/bpf/test_layout.py checks it against the header as one unit; split by map, the
rule tables, their counters and the config hints (which must change together) would sit
in different files.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import ipaddress
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ftagent.datapath import (
    AMP_PORT_NAMES,
    CLASSES,
    SIZE_BUCKETS,
    TCP_FLAG_CLASSES,
    VERDICTS,
    Counters,
    IPAddress,
    IPNetwork,
    Rule,
    RuleSpec,
    Sample,
    SourceStat,
    SpareMode,
)

# Map names, as declared in bpf/ftmaps.h.
RULE_MAPS = ("rsrc_v4", "rsrc_v6", "rpfx_v4", "rpfx_v6")
SIG_MATCH_SPORT, SIG_MATCH_DPORT, SIG_MATCH_FLAGS, SIG_MATCH_DST4, SIG_MATCH_DST6 = (
    0x01,
    0x02,
    0x04,
    0x08,
    0x10,
)
SIG_MATCH_FRAG = 0x20
SIG_PROTOS = (1, 6, 17, 58)
# RuleSpec.spare -> ft_sig_rule.guard bits (FT_GUARD_* in bpf/ftshared.h)
GUARD_SOCKET, GUARD_CONNECTED, GUARD_KNOWN = 0x01, 0x02, 0x04
GUARD_BITS: dict[SpareMode, int] = {
    "none": 0,
    "sockets": GUARD_SOCKET,
    "connected": GUARD_SOCKET | GUARD_CONNECTED,
}
# The protocols each spare mode can judge.
SPARE_PROTOS: dict[SpareMode, tuple[int, ...]] = {
    "none": SIG_PROTOS,
    "sockets": (1, 6, 17, 58),
    "connected": (17,),
}
MAX_RATE_PPS = 10_000_000  # keeps rate * 1e9 (bucket capacity in nano-tokens) in 64 bits


class RuleError(ValueError):
    """A rule spec that cannot be installed (bad fields or a full table)."""


def _sum_leaves(leaves: Any, field: str) -> list[int]:
    """Element-wise sum of an array field over per-CPU leaves."""
    total: list[int] | None = None
    for leaf in leaves:
        values = list(getattr(leaf, field))
        total = values if total is None else [a + b for a, b in zip(total, values, strict=True)]
    return total or []


def _named(names: tuple[str, ...], values: list[int]) -> dict[str, int]:
    if len(values) != len(names):
        raise RuntimeError(f"map layout has {len(values)} slots, datapath.py names {len(names)}")
    return dict(zip(names, values, strict=True))


def validate_spec(spec: RuleSpec) -> None:
    """Raise RuleError when `spec` does not describe an installable rule."""
    if spec.spare not in GUARD_BITS:
        raise RuleError(f"spare must be one of {tuple(GUARD_BITS)}, got {spec.spare!r}")
    if spec.spare != "none" and spec.kind != "signature":
        raise RuleError(f"spare={spec.spare} needs a signature rule, not a {spec.kind} rule")
    if spec.spare_known and spec.kind != "signature":
        raise RuleError(f"spare_known needs a signature rule, not a {spec.kind} rule")
    if spec.fragments and spec.kind != "signature":
        raise RuleError(f"fragments needs a signature rule, not a {spec.kind} rule")
    if spec.rate_pps is not None and not 1 <= spec.rate_pps <= MAX_RATE_PPS:
        raise RuleError(f"rate_pps must be 1..{MAX_RATE_PPS}, got {spec.rate_pps}")
    if spec.kind in ("src", "prefix"):
        if spec.network is None:
            raise RuleError(f"a {spec.kind} rule needs a network")
        if spec.kind == "src" and spec.network.prefixlen != spec.network.max_prefixlen:
            raise RuleError(f"a src rule needs a host address, got {spec.network}")
        return
    if spec.kind != "signature":
        raise RuleError(f"unknown rule kind {spec.kind!r}")
    if spec.proto not in SIG_PROTOS:
        raise RuleError(f"signature proto must be one of {SIG_PROTOS}, got {spec.proto}")
    for name in ("src_port", "dst_port"):
        port = getattr(spec, name)
        if port is not None and not 0 <= port <= 65535:
            raise RuleError(f"{name} must be 0..65535, got {port}")
    if spec.proto not in SPARE_PROTOS[spec.spare]:
        raise RuleError(
            f"spare={spec.spare} judges proto {SPARE_PROTOS[spec.spare]}, got {spec.proto}"
        )
    if (spec.src_port is not None or spec.dst_port is not None) and spec.proto not in (6, 17):
        raise RuleError("ports need proto 6 (tcp) or 17 (udp)")
    if spec.fragments and (
        spec.src_port is not None or spec.dst_port is not None or spec.tcp_flags_mask is not None
    ):
        raise RuleError("a fragments rule takes no ports or tcp flags (later fragments have none)")
    if (spec.tcp_flags is None) != (spec.tcp_flags_mask is None):
        raise RuleError("tcp_flags and tcp_flags_mask go together")
    if spec.tcp_flags_mask is not None:
        assert spec.tcp_flags is not None
        if spec.proto != 6:
            raise RuleError("tcp_flags need proto 6")
        if not (0 <= spec.tcp_flags <= 255 and 0 <= spec.tcp_flags_mask <= 255):
            raise RuleError("tcp_flags and tcp_flags_mask are bytes (0..255)")
        if spec.tcp_flags & ~spec.tcp_flags_mask:
            raise RuleError("tcp_flags has bits outside tcp_flags_mask")


def _u32_key(addr: ipaddress.IPv4Address) -> int:
    """A network-order IPv4 address as the host-order integer bcc stores in a __u32 key."""
    return int.from_bytes(addr.packed, sys.byteorder)


def _u32_addr(value: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(value).to_bytes(4, sys.byteorder))


def _source_address(table: str, key: Any) -> IPAddress:
    """The address of a top_v4 / top_v6 key."""
    if table == "top_v4":
        return _u32_addr(key.value)
    return ipaddress.IPv6Address(bytes(key.addr))


def _slot_address(cache: str, slot: Any) -> IPAddress:
    """The address of a top_cache_v4 / top_cache_v6 slot."""
    if cache == "top_cache_v4":
        return _u32_addr(slot.addr)
    return ipaddress.IPv6Address(bytes(slot.addr.addr))


def _bytes_into(array: Any, data: bytes) -> None:
    ct.memmove(ct.addressof(array), data, len(data))


class DatapathMaps:
    """Typed operations over the data path's maps in one compiled bcc program."""

    def __init__(self, bpf: Any, *, perf_buffer: bool = False, with_samples: bool = True,
                 socket_guard: bool = True) -> None:
        """socket_guard=False: the program was built without the socket helpers, so rules
        with spare != "none" are refused (they would drop what they should spare)."""
        self._bpf = bpf
        self._socket_guard = socket_guard
        self._perf = perf_buffer
        self._pending: list[Sample] = []
        self._max_pending = 0
        self._samples_open = False
        self._with_samples = with_samples

    def _t(self, name: str) -> Any:
        """A bcc table by name (bcc wants bytes)."""
        return self._bpf[name.encode()]

    # ---------- counters ----------

    def read_counters(self) -> Counters:
        leaves = self._t("stats").getvalue(0)
        return Counters(
            packets=_named(CLASSES, _sum_leaves(leaves, "class_packets")),
            bytes=_named(CLASSES, _sum_leaves(leaves, "class_bytes")),
            tcp_flags=_named(TCP_FLAG_CLASSES, _sum_leaves(leaves, "tcp_flags")),
            udp_src_port_packets=_named(AMP_PORT_NAMES, _sum_leaves(leaves, "udp_port_packets")),
            udp_src_port_bytes=_named(AMP_PORT_NAMES, _sum_leaves(leaves, "udp_port_bytes")),
            sizes=_named(SIZE_BUCKETS, _sum_leaves(leaves, "sizes")),
            verdicts=_named(VERDICTS, _sum_leaves(leaves, "verdict_packets")),
            verdict_bytes=_named(VERDICTS, _sum_leaves(leaves, "verdict_bytes")),
            read_at_ns=time.monotonic_ns(),
        )

    # ---------- top sources ----------

    def _iter_table(self, name: str) -> Iterator[tuple[Any, Any]]:
        """All (key, value) pairs, with one batch syscall where the kernel has it."""
        table = self._t(name)
        try:
            # Batch results hold plain ints for scalar keys; give callers ctypes keys.
            yield from [
                (table.Key(k) if isinstance(k, int) else k, v)
                for k, v in table.items_lookup_batch()
            ]
        except Exception:  # bcc raises bare Exception; LPM tries have no batch ops
            for key in list(table.keys()):
                try:
                    yield key, table[key]
                except KeyError:  # deleted meanwhile
                    continue

    def _sources(self) -> Iterator[tuple[str, Any, IPAddress, int, int, int]]:
        """(map, key or None, address, packets, bytes, last_seen_ns) per tracked source: the
        map's figures plus the counts still in the per-CPU front cache (ftshared.h,
        struct ft_src_slot_v4). key is None for a source only the cache holds (the LRU
        evicted it since its last flush)."""
        for name, cache in (("top_v4", "top_cache_v4"), ("top_v6", "top_cache_v6")):
            merged: dict[IPAddress, list[Any]] = {}
            for key, per_cpu in self._iter_table(name):
                merged[_source_address(name, key)] = [
                    key,
                    sum(v.packets for v in per_cpu),
                    sum(v.bytes for v in per_cpu),
                    max(v.last_seen_ns for v in per_cpu),
                ]
            for _, slot, addr in self._cached(cache):
                entry = merged.setdefault(addr, [None, 0, 0, 0])
                entry[1] += slot.packets
                entry[2] += slot.bytes
                entry[3] = max(entry[3], slot.last_seen_ns)
            for addr, (key, packets, nbytes, last) in merged.items():
                yield name, key, addr, packets, nbytes, last

    def _cached(self, cache: str) -> Iterator[tuple[int, Any, IPAddress]]:
        """(slot, per-CPU slot value, address) for every front-cache slot copy holding
        counts not yet added into the map."""
        for key, per_cpu in self._iter_table(cache):
            for slot in per_cpu:
                if slot.seen and slot.packets:
                    yield int(key.value), slot, _slot_address(cache, slot)

    def top_sources(self, limit: int) -> list[SourceStat]:
        stats = [
            SourceStat(address=a, packets=p, bytes=b, last_seen_ns=t)
            for _, _, a, p, b, t in self._sources()
        ]
        stats.sort(key=lambda s: (s.packets, s.bytes), reverse=True)
        return stats[: max(0, limit)]

    def age_sources(self, older_than_ns: int) -> int:
        stale: dict[str, list[Any]] = {"top_v4": [], "top_v6": []}
        stale_addresses: set[IPAddress] = set()
        for name, key, addr, _, _, last in self._sources():
            if last < older_than_ns:
                stale_addresses.add(addr)
                if key is not None:
                    stale[name].append(key)
        for name, keys in stale.items():
            table = self._t(name)
            for key in keys:
                with contextlib.suppress(KeyError):  # deleted meanwhile
                    del table[key]
        # The cache copies of the same sources go too (else their counts would bring the
        # source back). The slot is rewritten for every CPU at once: a copy another
        # source updates between the read and the write loses those packets, the same
        # race as deleting a map entry the program is counting into.
        if not stale_addresses:
            return 0
        for cache in ("top_cache_v4", "top_cache_v6"):
            table = self._t(cache)
            for key, per_cpu in self._iter_table(cache):
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

    # ---------- rules ----------

    def _spec_location(self, spec: RuleSpec) -> tuple[str, Any]:
        """(map name, key) for a src/prefix rule."""
        net = spec.network
        assert net is not None
        if spec.kind == "src":
            if net.version == 4:
                return "rsrc_v4", self._t("rsrc_v4").Key(_u32_key(net.network_address))
            key = self._t("rsrc_v6").Key()
            _bytes_into(key.addr, net.network_address.packed)
            return "rsrc_v6", key
        name = "rpfx_v4" if net.version == 4 else "rpfx_v6"
        key = self._t(name).Key()
        key.prefixlen = net.prefixlen
        _bytes_into(key.addr, net.network_address.packed)
        return name, key

    def _decode_location(self, name: str, key: Any, rate: int) -> RuleSpec:
        rate_pps = rate or None
        if name == "rsrc_v4":
            return RuleSpec("src", ipaddress.ip_network(_u32_addr(key.value)), rate_pps=rate_pps)
        if name == "rsrc_v6":
            net6 = ipaddress.ip_network(ipaddress.IPv6Address(bytes(key.addr)))
            return RuleSpec("src", net6, rate_pps=rate_pps)
        size = 4 if name == "rpfx_v4" else 16
        addr = bytes(key.addr)[:size]
        net = ipaddress.ip_network((addr, int(key.prefixlen)), strict=False)
        return RuleSpec("prefix", net, rate_pps=rate_pps)

    def _stat_base(self, name: str) -> int:
        """Per-rule counter slots are partitioned by map (sizes from the header)."""
        src_max = int(self._t("rsrc_v4").max_entries)
        pfx_max = int(self._t("rpfx_v4").max_entries)
        return {
            "rsrc_v4": 0,
            "rsrc_v6": src_max,
            "rpfx_v4": 2 * src_max,
            "rpfx_v6": 2 * src_max + pfx_max,
            "rsig": 2 * src_max + 2 * pfx_max,
        }[name]

    def _rule_counts(self, stat_idx: int) -> tuple[int, int, int, int]:
        """(dropped packets, dropped bytes, spared packets, spared bytes) of one rule."""
        per_cpu = self._t("rule_stats").getvalue(stat_idx)
        return (
            sum(v.packets for v in per_cpu),
            sum(v.bytes for v in per_cpu),
            sum(v.spared_packets for v in per_cpu),
            sum(v.spared_bytes for v in per_cpu),
        )

    def _zero_rule_counts(self, stat_idx: int) -> None:
        table = self._t("rule_stats")
        table[table.Key(stat_idx)] = table.Leaf()

    def _config_update(self, fn: Callable[[Any], None]) -> None:
        table = self._t("config")
        key = table.Key(0)
        leaf = table[key]
        fn(leaf)
        table[key] = leaf

    def _recount(self, name: str) -> None:
        count = sum(1 for _ in self._t(name))
        field = {
            "rsrc_v4": "n_src_v4",
            "rsrc_v6": "n_src_v6",
            "rpfx_v4": "n_prefix_v4",
            "rpfx_v6": "n_prefix_v6",
            "allow_v4": "n_allow_v4",
            "allow_v6": "n_allow_v6",
        }[name]
        self._config_update(lambda c: setattr(c, field, count))

    def add_rule(self, spec: RuleSpec, ttl_s: float) -> Rule:
        validate_spec(spec)
        if (spec.spare != "none" or spec.spare_known) and not self._socket_guard:
            what = "spare_known" if spec.spare == "none" else f"spare={spec.spare}"
            raise RuleError(
                f"{what} needs the kernel's socket-lookup helpers, which this "
                "data path was built without"
            )
        if ttl_s <= 0:
            raise RuleError(f"ttl must be positive, got {ttl_s}")
        expires = time.monotonic_ns() + int(ttl_s * 1e9)
        if spec.kind == "signature":
            return self._add_signature(spec, expires)
        name, key = self._spec_location(spec)
        table = self._t(name)
        try:
            old = table[key]
        except KeyError:
            old = None
        if old is not None:  # renew: keep counters and bucket state
            old.expires_ns = expires
            old.rate_pps = spec.rate_pps or 0
            table[key] = old
            return Rule(spec, expires, *self._rule_counts(int(old.stat_idx)))
        base = self._stat_base(name)
        used = {int(v.stat_idx) for _, v in self._iter_table(name)}
        free = next((i for i in range(base, base + table.max_entries) if i not in used), None)
        if free is None or len(used) >= table.max_entries:
            raise RuleError(f"rule table {name} is full ({table.max_entries} rules)")
        self._zero_rule_counts(free)
        leaf = table.Leaf()
        leaf.expires_ns = expires
        leaf.rate_pps = spec.rate_pps or 0
        leaf.stat_idx = free
        table[key] = leaf
        field = {"rsrc_v4": "n_src_v4", "rsrc_v6": "n_src_v6"}.get(
            name, "n_prefix_v4" if name == "rpfx_v4" else "n_prefix_v6"
        )
        self._config_update(lambda c: setattr(c, field, getattr(c, field) + 1))
        return Rule(spec, expires)

    # signature rules live in a fixed array scanned by the program
    def _sig_fields(self, spec: RuleSpec) -> tuple[int, int, int, int, int, int, bytes, int]:
        match = 0
        sport = dport = 0
        if spec.src_port is not None:
            match |= SIG_MATCH_SPORT
            sport = int.from_bytes(spec.src_port.to_bytes(2, "big"), sys.byteorder)
        if spec.dst_port is not None:
            match |= SIG_MATCH_DPORT
            dport = int.from_bytes(spec.dst_port.to_bytes(2, "big"), sys.byteorder)
        flags = mask = 0
        if spec.tcp_flags_mask is not None:
            assert spec.tcp_flags is not None
            match |= SIG_MATCH_FLAGS
            flags, mask = spec.tcp_flags, spec.tcp_flags_mask
        if spec.fragments:
            match |= SIG_MATCH_FRAG
        dst = b""
        if spec.dst is not None:
            match |= SIG_MATCH_DST4 if spec.dst.version == 4 else SIG_MATCH_DST6
            dst = spec.dst.packed
        guard = GUARD_BITS[spec.spare] | (GUARD_KNOWN if spec.spare_known else 0)
        return int(spec.proto or 0), match, flags, mask, sport, dport, dst, guard

    def _sig_slots(self) -> list[Any]:
        table = self._t("rsig")
        return [table[table.Key(i)] for i in range(table.max_entries)]

    def _decode_sig(self, leaf: Any) -> RuleSpec:
        match = int(leaf.match)

        def port(value: int) -> int:
            return int.from_bytes(int(value).to_bytes(2, sys.byteorder), "big")

        dst: IPAddress | None = None
        if match & SIG_MATCH_DST4:
            dst = ipaddress.IPv4Address(bytes(leaf.dst)[:4])
        elif match & SIG_MATCH_DST6:
            dst = ipaddress.IPv6Address(bytes(leaf.dst))
        has_flags = bool(match & SIG_MATCH_FLAGS)
        return RuleSpec(
            "signature",
            proto=int(leaf.proto),
            src_port=port(leaf.sport) if match & SIG_MATCH_SPORT else None,
            dst_port=port(leaf.dport) if match & SIG_MATCH_DPORT else None,
            tcp_flags=int(leaf.tcp_flags) if has_flags else None,
            tcp_flags_mask=int(leaf.tcp_flags_mask) if has_flags else None,
            dst=dst,
            rate_pps=int(leaf.rule.rate_pps) or None,
            spare=next(
                (m for m, b in GUARD_BITS.items() if b == int(leaf.guard) & ~GUARD_KNOWN), "none"
            ),
            spare_known=bool(int(leaf.guard) & GUARD_KNOWN),
            fragments=bool(match & SIG_MATCH_FRAG),
        )

    @staticmethod
    def _same_match(a: RuleSpec, b: RuleSpec) -> bool:
        return a.same_match(b)

    def _set_n_sig(self, slots: list[Any]) -> None:
        used = [i for i, s in enumerate(slots) if s.rule.expires_ns]
        n = used[-1] + 1 if used else 0
        self._config_update(lambda c: setattr(c, "n_sig", n))

    def _add_signature(self, spec: RuleSpec, expires: int) -> Rule:
        table = self._t("rsig")
        slots = self._sig_slots()
        now = time.monotonic_ns()
        for i, leaf in enumerate(slots):
            if leaf.rule.expires_ns and self._same_match(self._decode_sig(leaf), spec):
                leaf.rule.expires_ns = expires
                leaf.rule.rate_pps = spec.rate_pps or 0
                leaf.repeat.rate_pps = spec.rate_pps or 0
                leaf.guard = self._sig_fields(spec)[7]
                table[table.Key(i)] = leaf
                slots[i] = leaf
                self._pause_learning(slots)
                return Rule(spec, expires, *self._rule_counts(int(leaf.rule.stat_idx)))
        free = [i for i, s in enumerate(slots) if not s.rule.expires_ns]
        if not free:  # reuse the slot of a rule that has expired
            free = [i for i, s in enumerate(slots) if s.rule.expires_ns < now]
        if not free:
            raise RuleError(f"signature table is full ({table.max_entries} rules)")
        slot = free[0]
        proto, match, flags, mask, sport, dport, dst, guard = self._sig_fields(spec)
        leaf = table.Leaf()
        leaf.proto, leaf.match, leaf.tcp_flags, leaf.tcp_flags_mask = proto, match, flags, mask
        leaf.guard = guard
        leaf.sport, leaf.dport = sport, dport
        _bytes_into(leaf.dst, dst)
        leaf.rule.rate_pps = spec.rate_pps or 0
        leaf.repeat.rate_pps = spec.rate_pps or 0  # what repeating newcomers share
        leaf.rule.stat_idx = self._stat_base("rsig") + slot
        leaf.rule.expires_ns = expires
        self._zero_rule_counts(int(leaf.rule.stat_idx))
        table[table.Key(slot)] = leaf
        slots[slot] = leaf
        self._set_n_sig(slots)
        self._pause_learning(slots)
        return Rule(spec, expires)

    def _pause_learning(self, slots: list[Any]) -> None:
        """Egress learning stays off until the last known-sources rule expires: while one
        is in force, the node's answer to a spoofed newcomer that got through must not make
        that address known (and let its flood in). Tied to the rules' own expiry, so it
        ends on its own when the agent dies (fail open, like the rules)."""
        until = max(
            (int(s.rule.expires_ns) for s in slots
             if s.rule.expires_ns and int(s.guard) & GUARD_KNOWN),
            default=0,
        )  # fmt: skip
        self._config_update(lambda c: setattr(c, "learn_paused_until_ns", until))

    def remove_rule(self, spec: RuleSpec) -> bool:
        validate_spec(spec)
        if spec.kind == "signature":
            table = self._t("rsig")
            slots = self._sig_slots()
            for i, leaf in enumerate(slots):
                if leaf.rule.expires_ns and self._same_match(self._decode_sig(leaf), spec):
                    table[table.Key(i)] = table.Leaf()
                    slots[i] = table.Leaf()
                    self._set_n_sig(slots)
                    self._pause_learning(slots)
                    return True
            return False
        name, key = self._spec_location(spec)
        try:
            del self._t(name)[key]
        except KeyError:
            return False
        self._recount(name)
        return True

    def list_rules(self) -> list[Rule]:
        rules: list[Rule] = []
        for name in RULE_MAPS:
            for key, leaf in self._iter_table(name):
                spec = self._decode_location(name, key, int(leaf.rate_pps))
                counts = self._rule_counts(int(leaf.stat_idx))
                rules.append(Rule(spec, int(leaf.expires_ns), *counts))
        for leaf in self._sig_slots():
            if leaf.rule.expires_ns:
                counts = self._rule_counts(int(leaf.rule.stat_idx))
                spec = self._decode_sig(leaf)
                rules.append(Rule(spec, int(leaf.rule.expires_ns), *counts))
        return rules

    def remove_expired_rules(self) -> int:
        """Delete rules whose expiry has passed (the program already ignores them)."""
        now = time.monotonic_ns()
        removed = 0
        for rule in self.list_rules():
            if rule.expires_ns < now and self.remove_rule(rule.spec):
                removed += 1
        return removed

    # ---------- allow-list ----------

    def set_allowlist(self, networks: list[IPNetwork]) -> None:
        for version, name in ((4, "allow_v4"), (6, "allow_v6")):
            table = self._t(name)
            wanted: dict[tuple[int, bytes], IPNetwork] = {}
            for net in networks:
                if net.version == version:
                    wanted[(net.prefixlen, net.network_address.packed)] = net
            if len(wanted) > table.max_entries:
                raise RuleError(
                    f"allow-list holds at most {table.max_entries} IPv{version} prefixes"
                )
            for key in list(table.keys()):
                if (int(key.prefixlen), bytes(key.addr)) not in wanted:
                    del table[key]
            for (plen, packed), _ in wanted.items():
                key = table.Key()
                key.prefixlen = plen
                _bytes_into(key.addr, packed)
                table[key] = table.Leaf(1)
            self._recount(name)

    def allowlist(self) -> list[IPNetwork]:
        nets: list[IPNetwork] = []
        for name in ("allow_v4", "allow_v6"):
            for key in self._t(name):
                nets.append(ipaddress.ip_network((bytes(key.addr), int(key.prefixlen))))
        return nets

    # ---------- known sources ----------

    def set_learn_rate(self, one_in: int) -> None:
        """Verify every `one_in`-th passed TCP (non-SYN) / UDP packet of each source in the
        top-sources map against the socket tables, and remember the source when the packet
        belongs to an established connection or a connected UDP socket. `one_in` is 0
        (learning off) or a power of two (the program masks the source's packet count)."""
        if one_in < 0 or one_in & (one_in - 1):
            raise ValueError(f"learn rate must be 0 or a power of two, got {one_in}")
        self._config_update(lambda c: setattr(c, "learn_one_in", one_in))

    def set_egress_learn_rate(self, one_in: int) -> None:
        """The TC egress program marks the destination of 1 UDP datagram in `one_in` the
        node sends (per CPU) as a known source; 0 turns it off."""
        if one_in < 0:
            raise ValueError(f"egress learn rate must be >= 0, got {one_in}")
        self._config_update(lambda c: setattr(c, "egress_learn_one_in", one_in))

    def set_newcomer_source_pps(self, pps: int) -> None:
        """Under a known-sources rule, a source first seen during the attack that sends
        again passes up to `pps` packets per second of its own; 0: newcomers only share
        the rule's rate."""
        if pps < 0:
            raise ValueError(f"newcomer source pps must be >= 0, got {pps}")
        self._config_update(lambda c: setattr(c, "newcomer_source_pps", pps))

    def learning_paused_until_ns(self) -> int:
        """Kernel time until which egress learning is paused (0: not paused)."""
        table = self._t("config")
        return int(table[table.Key(0)].learn_paused_until_ns)

    def known_sources(self) -> list[IPAddress]:
        found: list[IPAddress] = []
        for key, _ in self._iter_table("known_v4"):
            found.append(_u32_addr(key.value))
        for key, _ in self._iter_table("known_v6"):
            found.append(ipaddress.IPv6Address(bytes(key.addr)))
        return found

    def add_known_sources(self, addresses: list[IPAddress]) -> None:
        """Mark sources as known (e.g. peers the agent learned another way)."""
        now = time.monotonic_ns()
        for addr in addresses:
            if addr.version == 4:
                table = self._t("known_v4")
                table[table.Key(_u32_key(addr))] = table.Leaf(now)
            else:
                table = self._t("known_v6")
                key = table.Key()
                _bytes_into(key.addr, addr.packed)
                table[key] = table.Leaf(now)

    def clear_known_sources(self) -> None:
        for name in ("known_v4", "known_v6"):
            self._t(name).clear()

    # ---------- sampling ----------

    def set_sample_rate(self, one_in: int) -> None:
        if one_in < 0:
            raise ValueError(f"sample rate must be >= 0, got {one_in}")
        self._config_update(lambda c: setattr(c, "sample_one_in", one_in))

    def set_source_insert_rate(self, one_in: int) -> None:
        """Top sources: admit a not-yet-tracked source on 1 in `one_in` of its packets."""
        if one_in < 0:
            raise ValueError(f"insert rate must be >= 0, got {one_in}")
        self._config_update(lambda c: setattr(c, "src_insert_one_in", one_in))

    def _on_sample(self, data: Any) -> int:
        layout = self._t("sample_layout").Leaf
        event = ct.cast(data, ct.POINTER(layout)).contents
        cap = min(int(event.cap_len), len(event.data))
        self._pending.append(
            Sample(
                timestamp_ns=int(event.timestamp_ns),
                wire_len=int(event.wire_len),
                verdict=VERDICTS[event.verdict] if event.verdict < len(VERDICTS) else "passed",
                data=bytes(event.data)[:cap],
            )
        )
        # A negative return stops the ring-buffer consumer; the rest stays for next time.
        return -1 if len(self._pending) >= self._max_pending else 0

    def _open_samples(self) -> None:
        if self._samples_open:
            return
        table = self._t("samples")
        if self._perf:
            table.open_perf_buffer(lambda _cpu, data, _size: self._on_sample(data), page_cnt=8)
        else:
            table.open_ring_buffer(lambda _ctx, data, _size: self._on_sample(data))
        self._samples_open = True

    def poll_samples(self, max_items: int = 4096) -> list[Sample]:
        if not self._with_samples:
            return []
        self._open_samples()
        self._max_pending = max_items
        if len(self._pending) < max_items:
            if self._perf:
                self._bpf.perf_buffer_poll(timeout=0)
            else:
                self._bpf.ring_buffer_consume()
        out, self._pending = self._pending[:max_items], self._pending[max_items:]
        return out

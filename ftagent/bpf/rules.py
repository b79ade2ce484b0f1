"""The rules in the kernel: source and prefix rules (hash maps and LPM tries), signature
rules (the fixed array rsig, scanned by the program), their per-rule counters
(rule_stats) and the config map's hints that let the program skip empty tables.

Concurrency: the agent and a CLI process may write the same maps. Adds and removes are
single map updates; the `n_*` hints only ever err on the side of "look it up". Two
processes adding a new rule at the same instant may pick the same per-rule counter slot
(the counters are then shared); nothing is dropped wrongly.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from ftagent.bpf.rule_spec import (
    GUARD_KNOWN,
    RULE_MAPS,
    RuleError,
    decode_sig,
    sig_fields,
    validate_spec,
)
from ftagent.bpf.tables import Tables, bytes_into, u32_addr, u32_key, v6_addr
from ftagent.datapath import Rule, RuleSpec

# The config map's hint for each rule or allow-list table (ftshared.h struct ft_config).
COUNT_FIELDS = {
    "rsrc_v4": "n_src_v4", "rsrc_v6": "n_src_v6",
    "rpfx_v4": "n_prefix_v4", "rpfx_v6": "n_prefix_v6",
    "allow_v4": "n_allow_v4", "allow_v6": "n_allow_v6",
}  # fmt: skip


def recount(tables: Tables, name: str) -> None:
    """Set the config hint of table `name` to its number of entries."""
    count = sum(1 for _ in tables[name])
    field = COUNT_FIELDS[name]
    tables.update_config(lambda c: setattr(c, field, count))


class RuleTables:
    def __init__(self, tables: Tables, *, socket_guard: bool) -> None:
        """socket_guard=False: the program was built without the socket helpers, so rules
        with spare != "none" are refused (they would drop what they should spare)."""
        self._t = tables
        self._socket_guard = socket_guard

    # ---------- source and prefix rules ----------

    def _location(self, spec: RuleSpec) -> tuple[str, Any]:
        """(map name, key) for a src/prefix rule."""
        net = spec.network
        assert net is not None
        if spec.kind == "src":
            if net.version == 4:
                return "rsrc_v4", self._t["rsrc_v4"].Key(u32_key(net.network_address))
            key = self._t["rsrc_v6"].Key()
            bytes_into(key.addr, net.network_address.packed)
            return "rsrc_v6", key
        name = "rpfx_v4" if net.version == 4 else "rpfx_v6"
        key = self._t[name].Key()
        key.prefixlen = net.prefixlen
        bytes_into(key.addr, net.network_address.packed)
        return name, key

    @staticmethod
    def _decode_location(name: str, key: Any, rate: int) -> RuleSpec:
        rate_pps = rate or None
        if name == "rsrc_v4":
            return RuleSpec("src", ipaddress.ip_network(u32_addr(key.value)), rate_pps=rate_pps)
        if name == "rsrc_v6":
            return RuleSpec("src", ipaddress.ip_network(v6_addr(key.addr)), rate_pps=rate_pps)
        size = 4 if name == "rpfx_v4" else 16
        addr = bytes(key.addr)[:size]
        net = ipaddress.ip_network((addr, int(key.prefixlen)), strict=False)
        return RuleSpec("prefix", net, rate_pps=rate_pps)

    def _stat_base(self, name: str) -> int:
        """Per-rule counter slots are partitioned by map (sizes from the header)."""
        src_max = self._t["rsrc_v4"].max_entries
        pfx_max = self._t["rpfx_v4"].max_entries
        return {
            "rsrc_v4": 0,
            "rsrc_v6": src_max,
            "rpfx_v4": 2 * src_max,
            "rpfx_v6": 2 * src_max + pfx_max,
            "rsig": 2 * src_max + 2 * pfx_max,
        }[name]

    def _counts(self, stat_idx: int) -> tuple[int, int, int, int]:
        """(dropped packets, dropped bytes, spared packets, spared bytes) of one rule."""
        per_cpu = self._t["rule_stats"][stat_idx]
        return (
            sum(v.packets for v in per_cpu),
            sum(v.bytes for v in per_cpu),
            sum(v.spared_packets for v in per_cpu),
            sum(v.spared_bytes for v in per_cpu),
        )

    def _zero_counts(self, stat_idx: int) -> None:
        table = self._t["rule_stats"]
        table[stat_idx] = table.Leaf()

    def add(self, spec: RuleSpec, ttl_s: float) -> Rule:
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
        name, key = self._location(spec)
        table = self._t[name]
        try:
            old = table[key]
        except KeyError:
            old = None
        if old is not None:  # renew: keep counters and bucket state
            old.expires_ns = expires
            old.rate_pps = spec.rate_pps or 0
            table[key] = old
            return Rule(spec, expires, *self._counts(int(old.stat_idx)))
        base = self._stat_base(name)
        used = {int(v.stat_idx) for _, v in table.items()}
        free = next((i for i in range(base, base + table.max_entries) if i not in used), None)
        if free is None or len(used) >= table.max_entries:
            raise RuleError(f"rule table {name} is full ({table.max_entries} rules)")
        self._zero_counts(free)
        leaf = table.Leaf()
        leaf.expires_ns = expires
        leaf.rate_pps = spec.rate_pps or 0
        leaf.stat_idx = free
        table[key] = leaf
        field = COUNT_FIELDS[name]
        self._t.update_config(lambda c: setattr(c, field, getattr(c, field) + 1))
        return Rule(spec, expires)

    # ---------- signature rules: a fixed array scanned by the program ----------

    def _sig_slots(self) -> list[Any]:
        table = self._t["rsig"]
        return [table[i] for i in range(table.max_entries)]

    def _set_n_sig(self, slots: list[Any]) -> None:
        used = [i for i, s in enumerate(slots) if s.rule.expires_ns]
        n = used[-1] + 1 if used else 0
        self._t.update_config(lambda c: setattr(c, "n_sig", n))

    def _add_signature(self, spec: RuleSpec, expires: int) -> Rule:
        table = self._t["rsig"]
        slots = self._sig_slots()
        now = time.monotonic_ns()
        for i, leaf in enumerate(slots):
            if leaf.rule.expires_ns and decode_sig(leaf).same_match(spec):
                leaf.rule.expires_ns = expires
                leaf.rule.rate_pps = spec.rate_pps or 0
                leaf.repeat.rate_pps = spec.rate_pps or 0
                leaf.guard = sig_fields(spec)[7]
                table[i] = leaf
                slots[i] = leaf
                self._pause_learning(slots)
                return Rule(spec, expires, *self._counts(int(leaf.rule.stat_idx)))
        free = [i for i, s in enumerate(slots) if not s.rule.expires_ns]
        if not free:  # reuse the slot of a rule that has expired
            free = [i for i, s in enumerate(slots) if s.rule.expires_ns < now]
        if not free:
            raise RuleError(f"signature table is full ({table.max_entries} rules)")
        slot = free[0]
        proto, match, flags, mask, sport, dport, dst, guard = sig_fields(spec)
        leaf = table.Leaf()
        leaf.proto, leaf.match, leaf.tcp_flags, leaf.tcp_flags_mask = proto, match, flags, mask
        leaf.guard = guard
        leaf.sport, leaf.dport = sport, dport
        bytes_into(leaf.dst, dst)
        leaf.rule.rate_pps = spec.rate_pps or 0
        leaf.repeat.rate_pps = spec.rate_pps or 0  # what repeating newcomers share
        leaf.rule.stat_idx = self._stat_base("rsig") + slot
        leaf.rule.expires_ns = expires
        self._zero_counts(int(leaf.rule.stat_idx))
        table[slot] = leaf
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
        self._t.update_config(lambda c: setattr(c, "learn_paused_until_ns", until))

    # ---------- every kind ----------

    def remove(self, spec: RuleSpec) -> bool:
        validate_spec(spec)
        if spec.kind == "signature":
            table = self._t["rsig"]
            slots = self._sig_slots()
            for i, leaf in enumerate(slots):
                if leaf.rule.expires_ns and decode_sig(leaf).same_match(spec):
                    table[i] = table.Leaf()
                    slots[i] = table.Leaf()
                    self._set_n_sig(slots)
                    self._pause_learning(slots)
                    return True
            return False
        name, key = self._location(spec)
        try:
            del self._t[name][key]
        except KeyError:
            return False
        recount(self._t, name)
        return True

    def list(self) -> list[Rule]:
        rules: list[Rule] = []
        for name in RULE_MAPS:
            for key, leaf in self._t[name].items():
                spec = self._decode_location(name, key, int(leaf.rate_pps))
                rules.append(Rule(spec, int(leaf.expires_ns), *self._counts(int(leaf.stat_idx))))
        for leaf in self._sig_slots():
            if leaf.rule.expires_ns:
                counts = self._counts(int(leaf.rule.stat_idx))
                rules.append(Rule(decode_sig(leaf), int(leaf.rule.expires_ns), *counts))
        return rules

    def remove_expired(self) -> int:
        """Delete rules whose expiry has passed (the program already ignores them)."""
        now = time.monotonic_ns()
        removed = 0
        for rule in self.list():
            if rule.expires_ns < now and self.remove(rule.spec):
                removed += 1
        return removed

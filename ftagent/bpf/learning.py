"""Known sources (known_v4/known_v6) and the settings of how the program learns them:
the XDP side's socket lookups, the TC egress program's UDP peers, and the budget of
newcomers under a known-sources rule (FT_GUARD_KNOWN in bpf/ftshared.h)."""

from __future__ import annotations

import time

from ftagent.bpf.tables import Tables, bytes_into, u32_addr, u32_key, v6_addr
from ftagent.datapath import IPAddress


class Learning:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def set_learn_rate(self, one_in: int) -> None:
        """Verify every `one_in`-th passed TCP (non-SYN) / UDP packet of each source in the
        top-sources map against the socket tables, and remember the source when the packet
        belongs to an established connection or a connected UDP socket. `one_in` is 0
        (learning off) or a power of two (the program masks the source's packet count)."""
        if one_in < 0 or one_in & (one_in - 1):
            raise ValueError(f"learn rate must be 0 or a power of two, got {one_in}")
        self._t.update_config(lambda c: setattr(c, "learn_one_in", one_in))

    def set_egress_learn_rate(self, one_in: int) -> None:
        """The TC egress program marks the destination of 1 UDP datagram in `one_in` the
        node sends (per CPU) as a known source; 0 turns it off."""
        if one_in < 0:
            raise ValueError(f"egress learn rate must be >= 0, got {one_in}")
        self._t.update_config(lambda c: setattr(c, "egress_learn_one_in", one_in))

    def set_newcomer_source_pps(self, pps: int) -> None:
        """Under a known-sources rule, a source first seen during the attack that sends
        again passes up to `pps` packets per second of its own; 0: newcomers only share
        the rule's rate."""
        if pps < 0:
            raise ValueError(f"newcomer source pps must be >= 0, got {pps}")
        self._t.update_config(lambda c: setattr(c, "newcomer_source_pps", pps))

    def paused_until_ns(self) -> int:
        """Kernel time until which egress learning is paused (0: not paused)."""
        return int(self._t.config().learn_paused_until_ns)

    def known(self) -> list[IPAddress]:
        found: list[IPAddress] = [u32_addr(key.value) for key in self._t["known_v4"]]
        found += [v6_addr(key.addr) for key in self._t["known_v6"]]
        return found

    def add_known(self, addresses: list[IPAddress]) -> None:
        """Mark sources as known (e.g. peers the agent learned another way)."""
        now = time.monotonic_ns()
        for addr in addresses:
            if addr.version == 4:
                table = self._t["known_v4"]
                table[table.Key(u32_key(addr))] = table.Leaf(now)
            else:
                table = self._t["known_v6"]
                key = table.Key()
                bytes_into(key.addr, addr.packed)
                table[key] = table.Leaf(now)

    def clear_known(self) -> None:
        for name in ("known_v4", "known_v6"):
            self._t[name].clear()

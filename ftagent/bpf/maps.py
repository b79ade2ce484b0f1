"""Every read and write of the data path's maps behind one object: `DatapathMaps`.

It works on the maps pinned in one directory (`Tables`): the agent's own (XdpDatapath)
or the running agent's, opened by `ftagent rules|block|unblock` (ftagent.bpf.pinned).
Each job lives in its own module (counters, sources, rules, allowlist, learning,
sampling); this class only puts them together under the `Datapath` method names.
"""

from __future__ import annotations

from ftagent.bpf import allowlist
from ftagent.bpf.counters import read_counters
from ftagent.bpf.learning import Learning
from ftagent.bpf.rules import RuleTables
from ftagent.bpf.sampling import Sampler
from ftagent.bpf.sources import TopSources
from ftagent.bpf.tables import Tables
from ftagent.bpf.wake import WakeBuffer
from ftagent.datapath import (
    Counters,
    IPAddress,
    IPNetwork,
    Rule,
    RuleSpec,
    Sample,
    SourceStat,
    Wake,
)


class DatapathMaps:
    """Typed operations over the maps of one pinned build (no attaching here)."""

    def __init__(self, tables: Tables, *, with_samples: bool = True) -> None:
        manifest = tables.manifest
        self.tables = tables
        self._sources = TopSources(tables)
        self._rules = RuleTables(tables, socket_guard=manifest.socket_guard)
        self._learning = Learning(tables)
        self._sampler = Sampler(tables, perf_buffer=manifest.perf_buffer)
        self._with_samples = with_samples
        self.wakes = WakeBuffer(tables, perf_buffer=manifest.perf_buffer)

    def read_counters(self) -> Counters:
        return read_counters(self.tables)

    def top_sources(self, limit: int) -> list[SourceStat]:
        return self._sources.top(limit)

    def age_sources(self, older_than_ns: int) -> int:
        return self._sources.age(older_than_ns)

    def set_source_insert_rate(self, one_in: int) -> None:
        self._sources.set_insert_rate(one_in)

    def add_rule(self, spec: RuleSpec, ttl_s: float) -> Rule:
        return self._rules.add(spec, ttl_s)

    def remove_rule(self, spec: RuleSpec) -> bool:
        return self._rules.remove(spec)

    def list_rules(self) -> list[Rule]:
        return self._rules.list()

    def remove_expired_rules(self) -> int:
        return self._rules.remove_expired()

    def set_allowlist(self, networks: list[IPNetwork]) -> None:
        allowlist.set_allowlist(self.tables, networks)

    def allowlist(self) -> list[IPNetwork]:
        return allowlist.allowlist(self.tables)

    def set_learn_rate(self, one_in: int) -> None:
        self._learning.set_learn_rate(one_in)

    def set_egress_learn_rate(self, one_in: int) -> None:
        self._learning.set_egress_learn_rate(one_in)

    def set_newcomer_source_pps(self, pps: int) -> None:
        self._learning.set_newcomer_source_pps(pps)

    def learning_paused_until_ns(self) -> int:
        return self._learning.paused_until_ns()

    def known_sources(self) -> list[IPAddress]:
        return self._learning.known()

    def add_known_sources(self, addresses: list[IPAddress]) -> None:
        self._learning.add_known(addresses)

    def clear_known_sources(self) -> None:
        self._learning.clear_known()

    def set_sample_rate(self, one_in: int) -> None:
        self._sampler.set_rate(one_in)

    def poll_samples(self, max_items: int = 4096) -> list[Sample]:
        return self._sampler.poll(max_items) if self._with_samples else []

    def set_wake_pps(self, pps: float) -> None:
        self.wakes.set_pps(pps)

    def wait_wake(self, timeout_s: float) -> list[Wake]:
        return self.wakes.wait(timeout_s)

    def close(self) -> None:
        """Release the buffers and every map fd (the pins stay)."""
        self.wakes.close()
        self._sampler.close()
        self.tables.close()

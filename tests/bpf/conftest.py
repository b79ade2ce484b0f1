"""Kernel tests: the XDP program compiled once per session and driven through
BPF_PROG_TEST_RUN (and a real veth in tests that say so). Root only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from lab.bpf_testrun import LoadedProgram, load_program, test_run
from tests.capability import require_root

if TYPE_CHECKING:
    from ftagent.bpf.maps import DatapathMaps


@dataclass
class Delta:
    """Counter movement caused by one test run (flattened `Counters` dicts)."""

    packets: dict[str, int]
    bytes: dict[str, int]
    tcp_flags: dict[str, int]
    udp_ports: dict[str, int]
    sizes: dict[str, int]
    verdicts: dict[str, int]


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


@dataclass
class Prog:
    loaded: LoadedProgram  # built and pinned as the agent's compiling process does it
    fd: int
    maps: DatapathMaps

    def run(self, frame: bytes, repeat: int = 1) -> tuple[int, Delta]:

        before = self.maps.read_counters()
        res = test_run(self.fd, frame, repeat)
        after = self.maps.read_counters()
        return res.retval, Delta(
            packets=_diff(after.packets, before.packets),
            bytes=_diff(after.bytes, before.bytes),
            tcp_flags=_diff(after.tcp_flags, before.tcp_flags),
            udp_ports=_diff(after.udp_src_port_packets, before.udp_src_port_packets),
            sizes=_diff(after.sizes, before.sizes),
            verdicts=_diff(after.verdicts, before.verdicts),
        )

    def reset(self) -> None:
        for rule in self.maps.list_rules():
            self.maps.remove_rule(rule.spec)
        self.maps.set_allowlist([])
        self.maps.set_sample_rate(0)
        self.maps.set_source_insert_rate(1)
        self.maps.set_learn_rate(0)
        self.maps.clear_known_sources()
        self.maps.set_newcomer_source_pps(0)
        self.maps.tables["newcomers"].clear()
        self.maps.poll_samples(1 << 20)
        self.maps.set_wake_pps(0)
        self.maps.wait_wake(0)


def _compile(perf_buffer: bool = False) -> Prog:
    from ftagent.bpf.program import BuildOptions

    loaded = load_program("perf" if perf_buffer else "prog",
                          BuildOptions(top_sources_size=4096, perf_buffer=perf_buffer))
    prog = Prog(loaded, loaded.fd, loaded.maps)
    prog.reset()
    return prog


@pytest.fixture(scope="session")
def session_prog() -> Iterator[Prog]:
    if os.geteuid() != 0:
        require_root()
    prog = _compile()
    yield prog
    prog.loaded.close()


@pytest.fixture
def prog(session_prog: Prog) -> Iterator[Prog]:
    """The session's program with no rules, no allow-list, sampling off."""
    require_root()
    session_prog.reset()
    yield session_prog
    session_prog.reset()


@pytest.fixture(scope="session")
def perf_prog() -> Iterator[Prog]:
    """The same program built with -DFT_PERFBUF (samples through a perf buffer)."""
    if os.geteuid() != 0:
        require_root()
    prog = _compile(perf_buffer=True)
    yield prog
    prog.loaded.close()

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.capability import require_root


@dataclass
class XdpProgram:
    maps: Any  # ftagent.bpf.maps.DatapathMaps
    fd: int  # the program, for BPF_PROG_TEST_RUN


@pytest.fixture(scope="session")
def xdp_program() -> Iterator[XdpProgram]:
    """The XDP program compiled and loaded once for the session (not attached to any
    interface): compiling takes seconds, and each module cleans up the rules it made."""
    require_root()
    from ftagent.bpf.program import BuildOptions
    from lab.bpf_testrun import load_program

    loaded = load_program("unit-agent", BuildOptions(top_sources_size=1024))
    try:
        yield XdpProgram(loaded.maps, loaded.fd)
    finally:
        loaded.close()


@pytest.fixture(scope="module")
def kernel_maps(xdp_program: XdpProgram) -> Any:
    """The XDP program's maps: a real Datapath for rules, the allow-list and sampling.
    Root only."""
    return xdp_program.maps


@pytest.fixture
def clean_maps(kernel_maps: Any) -> Iterator[Any]:
    """`kernel_maps` with no rules before and after the test."""

    def reset() -> None:
        for rule in kernel_maps.list_rules():
            kernel_maps.remove_rule(rule.spec)

    reset()
    yield kernel_maps
    reset()

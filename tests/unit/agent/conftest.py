from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.capability import require_root


@pytest.fixture(scope="module")
def kernel_maps() -> Iterator[Any]:
    """The XDP program's maps, compiled and loaded (not attached to any interface): a real
    Datapath for rules, the allow-list and sampling. Root only."""
    require_root()
    from ftagent.bpf.maps import DatapathMaps
    from ftagent.bpf.program import compile_xdp

    bpf = compile_xdp(top_sources_size=1024)
    maps = DatapathMaps(bpf)
    try:
        yield maps
    finally:
        bpf.cleanup()


@pytest.fixture
def clean_maps(kernel_maps: Any) -> Iterator[Any]:
    """`kernel_maps` with no rules before and after the test."""

    def reset() -> None:
        for rule in kernel_maps.list_rules():
            kernel_maps.remove_rule(rule.spec)

    reset()
    yield kernel_maps
    reset()

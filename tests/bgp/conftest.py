"""Real daemons: BIRD 2 as the upstream router in a namespace of the test's own, ExaBGP
(started and supervised by the engine) in a second one, peered over a veth."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from lab.bird import BgpLab
from tests.capability import require, require_root


@pytest.fixture
def bgp_lab() -> Iterator[BgpLab]:
    require_root()
    for tool in ("bird", "birdc", "exabgp", "nsenter"):
        require(shutil.which(tool) is not None, f"{tool} (Debian bird2 / exabgp / util-linux)")
    with BgpLab.create() as lab:
        yield lab

"""Real daemons: BIRD 2 as the upstream router in a namespace of the test's own, ExaBGP
(started and supervised by the engine) in a second one, peered over a veth."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def bgp_workdir() -> Iterator[Path]:
    """ExaBGP's directory for an in-process control plane: short, because its API socket
    lives there and a Unix socket path must stay under 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="ftbgp-") as path:
        yield Path(path)

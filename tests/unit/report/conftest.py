from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.report.loopback import LoopbackControlPlane


@pytest.fixture
def plane() -> Iterator[LoopbackControlPlane]:
    p = LoopbackControlPlane()
    p.start()
    yield p
    p.stop()

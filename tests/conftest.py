"""Fixtures for every suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """Put the root logger back as it was after each test.

    A Litestar app built in-process (tests/api) configures the root logger with a handler
    bound to the stream pytest captured for that test; a later in-process agent's log line
    would then be written to a closed stream ("--- Logging error ---").
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)

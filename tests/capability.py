"""Skip a test only where a capability is truly absent; under CI a missing capability fails.

CI runs as root with BPF, XDP and network namespaces, so there a skip would hide a broken
environment. Locally (no CI variable) a developer without root still gets a clear skip.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    """Skip (or, under CI=true, fail) when `condition` is false; `what` names the capability."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"capability missing under CI: {what}")
    pytest.skip(f"capability missing: {what}")


def require_root() -> None:
    require(os.geteuid() == 0, "root (BPF, XDP, network namespaces)")

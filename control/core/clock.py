"""Time as the store keeps it (epoch seconds, UTC) and as the API shows it (ISO 8601)."""

from __future__ import annotations

import time


def now() -> float:
    return time.time()


def iso(ts: float | None) -> str | None:
    # time.gmtime: a third of datetime's cost, and lists format thousands of these.
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

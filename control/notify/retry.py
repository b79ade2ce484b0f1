"""When to try a failed delivery again: exponential back-off with jitter, or Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import msgspec


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    base_delay_sec: float = 2.0
    max_delay_sec: float = 600.0
    # Attempts per delivery, the first included; after the last one it is marked failed.
    max_attempts: int = 8
    # Each back-off delay is drawn from [(1 - jitter) * d, d] so that channels that failed
    # together do not retry in lockstep.
    jitter: float = 0.5
    # A Retry-After longer than this is capped (a misbehaving service cannot park us).
    max_retry_after_sec: float = 3600.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after failed attempt number `attempt` (1-based), without Retry-After."""
        raw = min(self.max_delay_sec, self.base_delay_sec * (2.0 ** (attempt - 1)))
        draw: float = (rng or random).uniform(1.0 - self.jitter, 1.0)
        return raw * draw

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # Honour the service's wait exactly (never sooner), within our cap.
            return min(max(retry_after, 0.0), self.max_retry_after_sec)
        return self.backoff(attempt)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)

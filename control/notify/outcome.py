"""The result of one delivery attempt, as the senders report it and the store records it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    # False for answers that a retry cannot change (bad credentials, unknown webhook).
    retryable: bool
    http_status: int | None = None
    error: str | None = None
    # Seconds the service asked us to wait (Retry-After header or its JSON equivalent).
    retry_after: float | None = None

    @classmethod
    def ok(cls, http_status: int | None = None) -> Outcome:
        return cls(delivered=True, retryable=False, http_status=http_status)

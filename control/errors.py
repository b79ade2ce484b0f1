"""Domain errors: raised anywhere below the HTTP layer, mapped to status codes in one place.

`control.app` turns each into `{"ok": false, "error": <reason>}` (plus `field` when one
input value is at fault) with the status code the class declares.
"""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    status_code: ClassVar[int] = 400

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class InvalidValue(DomainError):
    """A request value is missing, malformed or out of range (names the field)."""

    status_code = 400

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field)


class Unauthorized(DomainError):
    """Missing, unknown or revoked credentials."""

    status_code = 401


class PaymentRequired(DomainError):
    """Workspace subscription not active, or the plan's node limit is reached."""

    status_code = 402


class NotFound(DomainError):
    """Unknown id, or an id that belongs to another workspace (indistinguishable)."""

    status_code = 404


class Conflict(DomainError):
    """The change collides with existing state (duplicate name, impossible transition)."""

    status_code = 409

"""Errors and their HTTP answers, in one place.

Domain errors are raised anywhere below the HTTP layer; each class declares its status
code. `EXCEPTION_HANDLERS` (installed by `control.app`) turns them, Litestar's own
validation and HTTP errors, and anything unexpected into `{"ok": false, "error": <reason>}`
(plus `field` when one input value is at fault).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from control.core.api_types import ErrorBody

log = logging.getLogger("ftcontrol")


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


class PayloadTooLarge(DomainError):
    """A body or upload over its configured limit."""

    status_code = 413


class ServiceBusy(DomainError):
    """A bounded queue is full (metrics writes): retry later."""

    status_code = 503


class NotificationsUnavailable(DomainError):
    """The app runs without its notification service (not started, or shutting down)."""

    status_code = 503


# ---- every failure leaves as {"ok": false, "error": ...} ------------------------------

REASON_MAX = 300


def _error(
    status: int,
    reason: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    if len(reason) > REASON_MAX:  # reasons may quote the input: never echo a huge one
        reason = reason[: REASON_MAX - 3] + "..."
    body = ErrorBody(ok=False, error=reason, field=field or None)
    return Response(body, status_code=status, headers=headers)


def _domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorBody]:
    return _error(exc.status_code, exc.reason, exc.field)


def _validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    """Litestar's own input validation (query types, body decoding), naming the field."""
    details = exc.extra if isinstance(exc.extra, list) else []
    for item in details:
        if isinstance(item, dict) and item.get("key") == "data" and item.get("message") == "'data'":
            # No body at all: Litestar reports the KeyError of its `data` argument.
            return _error(400, "body: a request body is required", "body")
        if isinstance(item, dict) and item.get("message"):
            field = _field_of(item)
            message = str(item["message"])
            return _error(400, f"{field}: {message}" if field else message, field)
    return _error(400, exc.detail or "invalid request")


def _field_of(item: dict[str, Any]) -> str | None:
    key = item.get("key")
    if key and key not in ("body", "data"):
        # `range_` and the like: Python names of parameters whose wire name is a keyword.
        return str(key).rstrip("_")
    message = str(item.get("message", ""))
    # msgspec: "Object missing required field `name` - at `$.config`",
    # "Expected `str`, got `int` - at `$.config.url`"
    field = _quoted_after(message, "field `")
    path = _quoted_after(message, "at `$.")
    if field and path:
        return f"{path}.{field}"
    return field or path


def _quoted_after(message: str, marker: str) -> str | None:
    if marker not in message:
        return None
    return message.split(marker, 1)[1].split("`", 1)[0]


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    # Keep the framework's headers: `Allow` on 405 (RFC 9110 requires it).
    return _error(exc.status_code, exc.detail or "error", headers=dict(exc.headers or {}))


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal server error")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _internal_error,
}

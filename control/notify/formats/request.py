"""An HTTP request a service module wants sent: built purely, sent by `http_sender`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    method: str
    url: str
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # HTTP basic credentials (Twilio, Alertmanager behind a proxy).
    basic_auth: tuple[str, str] | None = None


def json_request(
    url: str,
    payload: Any,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> OutboundRequest:
    return OutboundRequest(
        method=method,
        url=url,
        body=msgspec.json.encode(payload),
        headers=dict(headers or {}),
        basic_auth=basic_auth,
    )


def join_url(base: str, path: str) -> str:
    """Base URL from config + API path; a base with its own path prefix keeps it."""
    return base.rstrip("/") + path


def utc_iso(ts: float | None = None) -> str:
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def truncate(text: str, limit: int) -> str:
    """Cut to a service's documented length limit, marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"

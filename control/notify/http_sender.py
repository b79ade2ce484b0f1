"""Send an OutboundRequest with httpx and classify the answer into an Outcome."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from control.notify.formats.request import OutboundRequest
from control.notify.outcome import Outcome
from control.notify.retry import parse_retry_after

# Statuses worth retrying: rate limited, timed out, or the service's own trouble.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def _body_retry_after(response: httpx.Response) -> float | None:
    """Discord (`retry_after`) and Telegram (`parameters.retry_after`) say it in JSON."""
    try:
        data: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("retry_after")
    params = data.get("parameters")
    if value is None and isinstance(params, dict):
        value = params.get("retry_after")
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300]


async def send_http(client: httpx.AsyncClient, req: OutboundRequest) -> Outcome:
    headers = {"Content-Type": req.content_type, "User-Agent": "fasttrace-notify/0.1"}
    headers.update(req.headers)
    try:
        response = await client.request(
            req.method,
            req.url,
            content=req.body,
            headers=headers,
            auth=httpx.BasicAuth(*req.basic_auth) if req.basic_auth else None,
        )
    except httpx.TimeoutException as exc:
        # No URL in errors: for some services (Telegram) the token is in the path.
        return Outcome(delivered=False, retryable=True, error=f"timeout ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Outcome(delivered=False, retryable=True, error=f"{type(exc).__name__}")
    status = response.status_code
    if 200 <= status < 300:
        return Outcome.ok(status)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None and status == 429:
        retry_after = _body_retry_after(response)
    return Outcome(
        delivered=False,
        retryable=status in RETRY_STATUSES,
        http_status=status,
        error=f"HTTP {status}: {_excerpt(response)}".rstrip(": "),
        retry_after=retry_after,
    )

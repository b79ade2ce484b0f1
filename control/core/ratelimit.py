"""Failed-authentication limit per source address: 429 with Retry-After once it is reached.

Deploy tokens and node API keys are 256-bit random values, so guessing one is hopeless;
the limit keeps a guesser (or a misconfigured agent looping on a revoked key) from
costing the store a lookup per request and from flooding the logs. It counts answers of
401 to requests that presented credentials (an Authorization header), per client address,
in a sliding window. While an address is over the limit, every request of it that
presents credentials is answered 429 before any lookup, valid or not, so the answers
carry no information about the guesses. Requests without credentials are not attempts:
they get their plain 401.

The address is the ASGI client address: behind a reverse proxy, run uvicorn with
--forwarded-allow-ips for that proxy so the client's own address is seen (uvicorn trusts
X-Forwarded-For from 127.0.0.1 by default).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from control.core.errors import Unauthorized

DEFAULT_MAX_FAILURES = 30
DEFAULT_WINDOW_S = 60.0
# Addresses tracked at once; the least recently failing are forgotten first, so a flood
# of spoofed-looking sources cannot grow memory without bound.
MAX_SOURCES = 10_000
# Paths that take no credentials: never limited.
_OPEN_PATHS = ("/api/health", "/metrics", "/schema")


class FailureLimiter:
    """Sliding-window count of failed attempts per source; thread-unsafe (one event loop)."""

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or not window_s > 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_sources = max_sources
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.refused = 0  # requests answered 429

    def _recent(self, source: str, now: float) -> deque[float] | None:
        times = self._failures.get(source)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[source]
            return None
        return times

    def retry_after(self, source: str) -> float | None:
        """Seconds until `source` may try again, or None if it may try now."""
        now = self._clock()
        times = self._recent(source, now)
        if times is None or len(times) < self.max_failures:
            return None
        # The oldest failures that must age out before the count drops below the limit.
        return times[len(times) - self.max_failures] + self.window_s - now

    def failed(self, source: str) -> None:
        now = self._clock()
        times = self._recent(source, now)
        if times is None:
            times = self._failures[source] = deque(maxlen=self.max_failures)
            while len(self._failures) > self.max_sources:
                self._failures.popitem(last=False)
        self._failures.move_to_end(source)
        times.append(now)


def _has_credentials(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


def _source(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def auth_failure_limit(limiter: FailureLimiter) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware factory (for Litestar's `middleware=`) enforcing `limiter`."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] != ScopeType.HTTP
                or scope["path"].startswith(_OPEN_PATHS)
                or not _has_credentials(scope)
            ):
                await app(scope, receive, send)
                return
            source = _source(scope)
            wait = limiter.retry_after(source)
            if wait is not None:
                limiter.refused += 1
                await _too_many(send, wait)
                return

            async def watch(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] == 401:
                    limiter.failed(source)
                await send(message)

            try:
                await app(scope, receive, watch)
            except (Unauthorized, NotAuthorizedException):
                # Raised by an authentication middleware: the 401 is sent further out.
                limiter.failed(source)
                raise

        return guarded

    return middleware


async def _too_many(send: Send, wait_s: float) -> None:
    seconds = max(1, math.ceil(wait_s))
    body = msgspec.json.encode(
        {
            "ok": False,
            "error": "too many failed authentication attempts from this address; "
            f"retry after {seconds} s",
        }
    )
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(seconds).encode()),
    ]
    start: Any = {"type": "http.response.start", "status": 429, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})

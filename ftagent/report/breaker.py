"""A circuit breaker for the control-plane connection.

Closed: requests go out. After `failure_threshold` consecutive failures it opens and
nothing is sent until `reset_after_s` has passed; then one probe is let through
(half-open). A failed probe reopens it for twice as long (capped at `max_reset_s`), a
successful one closes it. The reporter consults it before every request, so a dead
control plane costs one timeout per back-off period instead of one per message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        reset_after_s: float = 1.0,
        max_reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after_s <= 0 or max_reset_s < reset_after_s:
            raise ValueError("need 0 < reset_after_s <= max_reset_s")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.max_reset_s = max_reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._open_for = reset_after_s
        self._state: BreakerState = "closed"
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """True if a request may go out now (closed, or the half-open probe)."""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open" and self._clock() - self._opened_at >= self._open_for:
                self._state = "half_open"
                return True
            # half_open: a probe is already out; open: still cooling down
            return False

    def seconds_until_retry(self) -> float:
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self._open_for - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._state = "closed"
            self._open_for = self.reset_after_s

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == "half_open":
                self._open_for = min(self._open_for * 2, self.max_reset_s)
                self._trip()
            elif self._state == "closed" and self._failures >= self.failure_threshold:
                self._trip()

    def _trip(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self.opened_count += 1

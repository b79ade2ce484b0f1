"""Back-off delays and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from control.notify.retry import RetryPolicy, parse_retry_after


def test_backoff_doubles_within_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_sec=1.0, max_delay_sec=10.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        draws = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.5 * full <= d <= full for d in draws)
        assert max(draws) - min(draws) > 0.2 * full  # jitter really spreads them


def test_no_jitter_gives_exact_delays() -> None:
    policy = RetryPolicy(base_delay_sec=0.5, jitter=0.0)
    assert [policy.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_sec=0.1, max_retry_after_sec=60.0)
    assert policy.delay(1, 7.0) == 7.0
    assert policy.delay(1, 3600.0) == 60.0
    assert policy.delay(1, -5.0) == 0.0


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None

from __future__ import annotations

import pytest

from ftagent.report.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(b: CircuitBreaker) -> str:
    return b.state


def test_opens_after_threshold_and_probes_after_reset() -> None:
    clock = Clock()
    b = CircuitBreaker(failure_threshold=3, reset_after_s=1.0, max_reset_s=4.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert state(b) == "closed"
    b.record_failure()
    assert state(b) == "open"
    assert not b.allow()
    assert b.seconds_until_retry() == pytest.approx(1.0)
    clock.now += 1.0
    assert b.allow()  # the probe
    assert state(b) == "half_open"
    assert not b.allow()  # only one probe at a time
    b.record_success()
    assert state(b) == "closed"
    assert b.allow()


def test_failed_probe_doubles_the_wait_up_to_the_cap() -> None:
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, reset_after_s=1.0, max_reset_s=4.0, clock=clock)
    b.record_failure()
    waits = []
    for _ in range(4):
        waits.append(b.seconds_until_retry())
        clock.now += waits[-1]
        assert b.allow()
        b.record_failure()
    assert waits == [1.0, 2.0, 4.0, 4.0]
    assert b.opened_count == 5
    clock.now += 4.0
    assert b.allow()
    b.record_success()
    b.record_failure()  # closed again with the base wait
    assert b.seconds_until_retry() == pytest.approx(1.0)


def test_success_resets_the_failure_count() -> None:
    b = CircuitBreaker(failure_threshold=2, clock=Clock())
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert state(b) == "closed"


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_after_s"):
        CircuitBreaker(reset_after_s=5.0, max_reset_s=1.0)

"""The per-system circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from services.sync_connector.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def moves() -> list[tuple[BreakerState, BreakerState]]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, moves: list[tuple[BreakerState, BreakerState]]) -> CircuitBreaker:
    return CircuitBreaker(
        "CRM",
        failure_threshold=3,
        cooldown_s=10.0,
        clock=clock,
        on_transition=lambda _code, old, new, _why: moves.append((old, new)),
    )


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """Read through a call: mypy would otherwise keep the property narrowed across transitions."""
    return breaker.state


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record_failure(permit)


def test_opens_after_k_consecutive_transient_failures(breaker: CircuitBreaker, moves: list[object]) -> None:
    _fail(breaker, 2)
    success = breaker.acquire()
    assert success is not None
    breaker.record_success(success)  # a success in between resets the count
    _fail(breaker, 2)
    assert state_of(breaker) is BreakerState.CLOSED
    _fail(breaker, 1)
    assert state_of(breaker) is BreakerState.OPEN
    assert moves == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert breaker.acquire() is None
    assert breaker.calls_allowed() == 0
    assert breaker.seconds_until_probe() == pytest.approx(10.0)


def test_one_trial_after_the_cooldown_closes_on_success(
    breaker: CircuitBreaker, clock: FakeClock, moves: list[object]
) -> None:
    _fail(breaker, 3)
    clock.now += 10.0
    assert breaker.calls_allowed() == 1
    trial = breaker.acquire()
    assert trial is not None
    assert trial.trial
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.acquire() is None  # only one trial at a time
    assert breaker.calls_allowed() == 0
    breaker.record_success(trial)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.calls_allowed() is None
    assert moves == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_a_failed_trial_reopens_for_another_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _fail(breaker, 3)
    clock.now += 10.0
    trial = breaker.acquire()
    assert trial is not None
    clock.now += 1.0
    breaker.record_failure(trial)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.seconds_until_probe() == pytest.approx(10.0)


def test_an_unused_trial_is_released(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _fail(breaker, 3)
    clock.now += 10.0
    trial = breaker.acquire()
    assert trial is not None
    breaker.release(trial)
    assert breaker.acquire() is not None


def test_results_of_calls_permitted_before_a_transition_are_ignored(breaker: CircuitBreaker) -> None:
    slow = breaker.acquire()
    assert slow is not None
    _fail(breaker, 3)
    breaker.record_success(slow)  # started while closed, ends while open: says nothing about now
    assert state_of(breaker) is BreakerState.OPEN


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("CRM", failure_threshold=0, cooldown_s=1.0)

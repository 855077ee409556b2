"""The per-system circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from services.sync_connector.breaker import BreakerState, CircuitBreaker, Permit


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


def _open_then_trial(breaker: CircuitBreaker, clock: FakeClock) -> Permit:
    """Three failures open the breaker; once its cool-down is over, the trial call's permit."""
    _fail(breaker, 3)
    clock.now += 10.0
    trial = breaker.acquire()
    assert trial is not None
    return trial


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
    trial = _open_then_trial(breaker, clock)
    clock.now += 1.0
    breaker.record_failure(trial)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.seconds_until_probe() == pytest.approx(10.0)  # no growth: max_cooldown_s left unset


def _probe_and_fail(breaker: CircuitBreaker, clock: FakeClock) -> float:
    """Wait out the cool-down, fail the trial; returns the cool-down waited."""
    waited = breaker.seconds_until_probe()
    clock.now += waited
    trial = breaker.acquire()
    assert trial is not None
    assert trial.trial
    breaker.record_failure(trial)
    return waited


def test_while_the_system_stays_down_probes_back_off_up_to_the_cap(clock: FakeClock) -> None:
    breaker = CircuitBreaker("CSS", failure_threshold=1, cooldown_s=30.0, max_cooldown_s=300.0, clock=clock)
    _fail(breaker, 1)
    waits = [_probe_and_fail(breaker, clock) for _ in range(1200)]  # ten hours and more
    assert waits[:6] == pytest.approx([30.0, 60.0, 120.0, 240.0, 300.0, 300.0])
    assert max(waits) == 300.0
    # Recovery: the next trial succeeds, and a later outage starts from the first cool-down again.
    clock.now += breaker.seconds_until_probe()
    trial = breaker.acquire()
    assert trial is not None
    breaker.record_success(trial)
    assert state_of(breaker) is BreakerState.CLOSED
    _fail(breaker, 1)
    assert breaker.seconds_until_probe() == pytest.approx(30.0)


def test_a_trial_out_longer_than_cooldown_plus_call_timeout_is_written_off(clock: FakeClock) -> None:
    moves: list[tuple[BreakerState, BreakerState, str]] = []
    breaker = CircuitBreaker(
        "CRM",
        failure_threshold=1,
        cooldown_s=10.0,
        call_timeout_s=5.0,
        clock=clock,
        on_transition=lambda _code, old, new, why: moves.append((old, new, why)),
    )
    _fail(breaker, 1)
    clock.now += 10.0
    leaked = breaker.acquire()  # taken, then never reported nor released
    assert leaked is not None
    clock.now += 15.0
    assert breaker.calls_allowed() == 0  # not yet: cool-down + call timeout = 15 s
    assert breaker.acquire() is None
    clock.now += 0.5
    assert breaker.calls_allowed() == 1
    assert moves[-1][:2] == (BreakerState.HALF_OPEN, BreakerState.HALF_OPEN)
    assert "without a result" in moves[-1][2]
    trial = breaker.acquire()
    assert trial is not None
    breaker.record_failure(leaked)  # the lost trial's late result says nothing any more
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.record_success(trial)
    assert state_of(breaker) is BreakerState.CLOSED


def test_while_a_trial_is_out_callers_wait_at_most_until_it_is_written_off(clock: FakeClock) -> None:
    breaker = CircuitBreaker("CRM", failure_threshold=1, cooldown_s=10.0, call_timeout_s=2.0, clock=clock)
    _fail(breaker, 1)
    clock.now += 10.0
    assert breaker.acquire() is not None
    clock.now += 7.0
    assert breaker.seconds_until_probe() == pytest.approx(5.0)


def test_releasing_after_a_reported_result_changes_nothing(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trial = _open_then_trial(breaker, clock)
    breaker.record_failure(trial)
    breaker.release(trial)  # every path releases; after the report it is a no-op
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.acquire() is None


def test_an_unused_trial_is_released(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trial = _open_then_trial(breaker, clock)
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

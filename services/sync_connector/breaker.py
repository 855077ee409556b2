"""A per-system circuit breaker (pure state machine; the clock and the transition hook are injected).

closed --K consecutive transient failures--> open --cool-down elapsed, next caller--> half-open
half-open --the one trial call succeeds--> closed;  half-open --it fails--> open (a new cool-down)
half-open --the trial has been out longer than cool-down + call timeout--> half-open (a new trial may go)

While a system stays down the cool-down doubles with each failed trial, from
``cooldown_s`` up to ``max_cooldown_s``: one probe at a time, at least one per
``max_cooldown_s``. A trial permit that is never reported (a leak: an error or a
cancellation between taking it and making the call) can hold the breaker
half-open only until ``cooldown_s + call_timeout_s`` have passed; then the trial
is written off and the next caller probes. Callers still release every permit
on every path (``release`` after a reported result is a no-op).

Only transient failures count (5xx, 408/429, timeout, connection error): a 4xx
rejection or a 409 means the system is up and answering. Each connector
process keeps its own breaker per system; they are not coordinated, so with N
instances a down system sees at most N trial calls per cool-down.

A call asks for a ``Permit`` before it is made and reports its result with it.
Results of calls permitted before the last transition are ignored (a slow call
started while closed must not close a breaker that opened meanwhile).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

import msgspec


class BreakerState(IntEnum):
    """Also the value of the ``circuit_breaker_state`` gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Permit(msgspec.Struct, frozen=True):
    generation: int
    trial: bool


TransitionHook = Callable[[str, BreakerState, BreakerState, str], None]


def _ignore_transition(_code: str, _old: BreakerState, _new: BreakerState, _why: str) -> None:
    return None


class CircuitBreaker:
    def __init__(
        self,
        system_code: str,
        *,
        failure_threshold: int,
        cooldown_s: float,
        max_cooldown_s: float | None = None,
        call_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_transition: TransitionHook = _ignore_transition,
    ) -> None:
        if failure_threshold < 1:
            msg = "failure_threshold must be at least 1"
            raise ValueError(msg)
        self.system_code = system_code
        self._threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max(cooldown_s, cooldown_s if max_cooldown_s is None else max_cooldown_s)
        self._interval_s = cooldown_s  # the current cool-down: doubles per failed trial, up to the max
        self._trial_limit_s = cooldown_s + call_timeout_s
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False
        self._trial_at = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    def seconds_until_probe(self) -> float:
        """How long a deferred delivery should wait: until the next trial may be made."""
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self._interval_s - self._clock())
        if self._state is BreakerState.HALF_OPEN:
            self._write_off_a_lost_trial()
            if not self._trial_out:
                return 0.0
            # A trial is out; its result decides. Re-check after a cool-down at most.
            return min(self._interval_s, max(0.0, self._trial_at + self._trial_limit_s - self._clock()))
        return 0.0

    def calls_allowed(self) -> int | None:
        """How many calls may start now: None = no limit (closed), 1 = a trial may go, 0 = none."""
        if self._state is BreakerState.CLOSED:
            return None
        if self._state is BreakerState.OPEN:
            return 1 if self.seconds_until_probe() == 0 else 0
        self._write_off_a_lost_trial()
        return 0 if self._trial_out else 1

    def acquire(self) -> Permit | None:
        """A permit to call now, or None when the breaker is open (or its one trial is out)."""
        if self._state is BreakerState.CLOSED:
            return Permit(self._generation, trial=False)
        if self._state is BreakerState.OPEN:
            if self.seconds_until_probe() > 0:
                return None
            self._move(BreakerState.HALF_OPEN, "cool-down elapsed, probing with one trial call")
        self._write_off_a_lost_trial()
        if self._trial_out:
            return None
        self._trial_out = True
        self._trial_at = self._clock()
        return Permit(self._generation, trial=True)

    def _write_off_a_lost_trial(self) -> None:
        """A trial out longer than a cool-down plus a call's timeout will never report: let another go."""
        if self._state is BreakerState.HALF_OPEN and self._trial_out:
            out_s = self._clock() - self._trial_at
            if out_s > self._trial_limit_s:
                self._move(BreakerState.HALF_OPEN, f"trial call out for {out_s:.0f} s without a result: reset")

    def release(self, permit: Permit) -> None:
        """The permitted call was not made after all (e.g. the delivery turned out superseded)."""
        if permit.trial and permit.generation == self._generation:
            self._trial_out = False

    def record_success(self, permit: Permit) -> None:
        """The system answered (2xx, 409, or a 4xx rejection): it is up."""
        if permit.generation != self._generation:
            return
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN and permit.trial:
            self._move(BreakerState.CLOSED, "trial call succeeded")

    def record_failure(self, permit: Permit) -> None:
        """A transient failure: 5xx, 408/429, timeout or connection error."""
        if permit.generation != self._generation:
            return
        if self._state is BreakerState.HALF_OPEN and permit.trial:
            self._interval_s = min(self._interval_s * 2, self._max_cooldown_s)
            self._open(f"trial call failed, next probe in {self._interval_s:g} s")
            return
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self._threshold:
                self._open(f"{self._failures} consecutive transient failures")

    def _open(self, why: str) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN, why)

    def _move(self, new: BreakerState, why: str) -> None:
        old, self._state = self._state, new
        self._generation += 1
        self._trial_out = False
        if new is BreakerState.CLOSED:
            self._failures = 0
            self._interval_s = self._cooldown_s
        self._on_transition(self.system_code, old, new, why)

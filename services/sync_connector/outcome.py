"""Classify one external call's result, and the retry policy (pure, unit tested)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from http import HTTPStatus

import backoff
import msgspec


class SyncStatus(StrEnum):
    """``external_sync_records.sync_status``."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    RETRYING = "retrying"
    SUPERSEDED = "superseded"


TERMINAL_STATUSES = frozenset({SyncStatus.SUCCESS, SyncStatus.SUPERSEDED, SyncStatus.FAILED})


class Outcome(StrEnum):
    """What one attempt means; also the ``result`` label of ``sync_attempts_total``."""

    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"
    RETRYABLE = "retryable"


class Classification(msgspec.Struct, frozen=True):
    outcome: Outcome
    detail: str
    current_version: int | None = None


class _Conflict(msgspec.Struct):
    current_version: int = msgspec.field(name="currentVersion")


# 4xx answers that say "not now" rather than "never": a deliberate deviation from
# "4xx is permanent" (DESIGN.md). 408 is the server giving up waiting for our request,
# 429 is rate limiting; both succeed when repeated later, so they retry like a 5xx.
TRANSIENT_4XX = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS})


def classify_response(status: int, body: bytes, event_version: int) -> Classification:
    """2xx applied; 409 with an equal/newer version already applied/superseded; 408/429 and 5xx retry;
    other 4xx permanent."""
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        return Classification(Outcome.APPLIED, f"HTTP {status}")
    if status == HTTPStatus.CONFLICT:
        return _classify_conflict(body, event_version)
    if status in TRANSIENT_4XX:
        return Classification(Outcome.RETRYABLE, f"HTTP {status}: {_snippet(body)}")
    if HTTPStatus.BAD_REQUEST <= status < HTTPStatus.INTERNAL_SERVER_ERROR:
        return Classification(Outcome.REJECTED, f"HTTP {status}: {_snippet(body)}")
    return Classification(Outcome.RETRYABLE, f"HTTP {status}: {_snippet(body)}")


def classify_transport_error(kind: str, message: str) -> Classification:
    """No answer (timeout, refused or dropped connection): the call may or may not have landed; retry."""
    return Classification(Outcome.RETRYABLE, f"{kind}: {message}")


def _classify_conflict(body: bytes, event_version: int) -> Classification:
    try:
        current = msgspec.json.decode(body, type=_Conflict).current_version
    except msgspec.DecodeError:
        return Classification(Outcome.REJECTED, f"HTTP 409 without currentVersion: {_snippet(body)}")
    if current == event_version:
        return Classification(Outcome.ALREADY_APPLIED, f"HTTP 409: version {current} already applied", current)
    if current > event_version:
        return Classification(Outcome.SUPERSEDED, f"HTTP 409: system holds newer version {current}", current)
    # The system refuses a newer version than it holds: not something retrying fixes.
    return Classification(Outcome.REJECTED, f"HTTP 409: system holds older version {current}", current)


def _snippet(body: bytes, limit: int = 200) -> str:
    return body[:limit].decode(errors="replace")


class DeadLetterReason(StrEnum):
    """Why a record ended ``failed``: ``sync.dead_letters.reason`` and the ``reason`` label of the metric."""

    REJECTED = "rejected"  # a permanent refusal: 4xx other than 408/409/429 (or a 409 retrying cannot fix)
    DEADLINE = "deadline"  # still failing transiently when the system's delivery deadline had passed
    RETRIES_EXHAUSTED = "retries_exhausted"  # the optional count cap (off by default)


class NextStep(msgspec.Struct, frozen=True):
    """What one attempt makes of its record."""

    status: SyncStatus
    delay_s: float = 0.0  # before the next attempt, when retrying
    dead_letter_reason: DeadLetterReason | None = None  # when failed
    # The attempt spends one of the record's tries (retry_count, an attempts row). A probe of a
    # system known to be down spends nothing: it tells about the system, not the record.
    counted: bool = True


def next_step(
    outcome: Outcome,
    *,
    now: datetime,
    deliver_by: datetime,
    retries_done: int,
    max_retries: int | None,
    retry_in_s: float,
    probe: bool = False,
) -> NextStep:
    """The record's status after an attempt: retries go on until ``deliver_by``, not for a number of tries.

    ``retry_in_s`` is when the next try would be (the backoff, or the breaker's next probe); the last
    try is made at the deadline itself, never after it. ``max_retries`` is the optional count cap (None:
    none); a ``probe`` (the breaker's trial call while the system is down) spends no try of the record.
    """
    if outcome in (Outcome.APPLIED, Outcome.ALREADY_APPLIED):
        return NextStep(SyncStatus.SUCCESS)
    if outcome is Outcome.SUPERSEDED:
        return NextStep(SyncStatus.SUPERSEDED)
    if outcome is Outcome.REJECTED:
        return NextStep(SyncStatus.FAILED, dead_letter_reason=DeadLetterReason.REJECTED)
    counted = not probe
    if now >= deliver_by:
        return NextStep(SyncStatus.FAILED, dead_letter_reason=DeadLetterReason.DEADLINE, counted=counted)
    if counted and max_retries is not None and retries_done >= max_retries:
        return NextStep(SyncStatus.FAILED, dead_letter_reason=DeadLetterReason.RETRIES_EXHAUSTED)
    left_s = (deliver_by - now).total_seconds()
    return NextStep(SyncStatus.RETRYING, delay_s=max(0.0, min(retry_in_s, left_s)), counted=counted)


def equal_jitter(ceiling: float) -> float:
    """Between half the ceiling and the ceiling: retries spread out, never later than the cap, never at once."""
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - spreading retries, not cryptography


class RetryPolicy:
    """Exponential backoff (``base_s`` doubling per try, capped at ``max_s``) with jitter taken off the ceiling.

    ``max_retries`` is an optional count cap (None: retry by time only, until the record's deadline).
    """

    def __init__(
        self,
        max_retries: int | None,
        base_s: float,
        max_s: float,
        jitter: Callable[[float], float] = backoff.full_jitter,
    ) -> None:
        self.max_retries = max_retries
        self._base_s = base_s
        self.max_delay_s = max_s
        self._jitter = jitter

    def ceiling(self, retry_number: int) -> float:
        """The delay before retry ``retry_number`` (1-based) before jitter: min(max, base * 2**(n-1))."""
        waits = backoff.expo(base=2, factor=self._base_s, max_value=self.max_delay_s)
        next(waits)  # backoff's generators are primed with one bare next()
        ceiling = 0.0
        for _ in range(min(max(retry_number, 1), 64)):  # 2**64 s is past any cap
            ceiling = next(waits)
            if ceiling >= self.max_delay_s:
                break
        return ceiling

    def delay_before_retry(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based): jitter(ceiling), never above the cap."""
        return min(self._jitter(self.ceiling(retry_number)), self.max_delay_s)

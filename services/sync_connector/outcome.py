"""Classify one external call's result, and the retry policy (pure, unit tested)."""

from __future__ import annotations

from collections.abc import Callable
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


def status_after(outcome: Outcome, retries_done: int, max_retries: int) -> SyncStatus:
    """The record's status after an attempt with ``retries_done`` retries already spent."""
    if outcome in (Outcome.APPLIED, Outcome.ALREADY_APPLIED):
        return SyncStatus.SUCCESS
    if outcome is Outcome.SUPERSEDED:
        return SyncStatus.SUPERSEDED
    if outcome is Outcome.RETRYABLE and retries_done < max_retries:
        return SyncStatus.RETRYING
    return SyncStatus.FAILED


class RetryPolicy:
    """Exponential backoff with full jitter (AWS "Full Jitter"), capped, ``max_retries`` retries."""

    def __init__(
        self,
        max_retries: int,
        base_s: float,
        max_s: float,
        jitter: Callable[[float], float] = backoff.full_jitter,
    ) -> None:
        self.max_retries = max_retries
        self._base_s = base_s
        self.max_delay_s = max_s
        self._jitter = jitter

    def delay_before_retry(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based): jitter(min(max, base * 2**(n-1)))."""
        waits = backoff.expo(base=2, factor=self._base_s, max_value=self.max_delay_s)
        next(waits)  # backoff's generators are primed with one bare next()
        ceiling = 0.0
        for _ in range(max(retry_number, 1)):
            ceiling = next(waits)
        return self._jitter(ceiling)

"""Outcome classification, the next step after an attempt (retries by time) and the backoff of the sync-connector."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.sync_connector.outcome import (
    DeadLetterReason,
    NextStep,
    Outcome,
    RetryPolicy,
    SyncStatus,
    classify_response,
    classify_transport_error,
    equal_jitter,
    next_step,
)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_means_applied(status: int) -> None:
    assert classify_response(status, b"", event_version=3).outcome is Outcome.APPLIED


def test_409_with_the_same_version_means_already_applied() -> None:
    result = classify_response(409, b'{"currentVersion": 3}', event_version=3)
    assert result.outcome is Outcome.ALREADY_APPLIED
    assert result.current_version == 3


def test_409_with_a_newer_version_means_superseded() -> None:
    result = classify_response(409, b'{"currentVersion": 5}', event_version=3)
    assert result.outcome is Outcome.SUPERSEDED
    assert result.current_version == 5


@pytest.mark.parametrize("body", [b'{"currentVersion": 2}', b"conflict", b"{}", b""])
def test_409_with_an_older_or_missing_version_is_permanent(body: bytes) -> None:
    assert classify_response(409, body, event_version=3).outcome is Outcome.REJECTED


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_4xx_is_permanent(status: int) -> None:
    result = classify_response(status, b'{"detail": "bad"}', event_version=1)
    assert result.outcome is Outcome.REJECTED
    assert str(status) in result.detail


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(status: int) -> None:
    assert classify_response(status, b"", event_version=1).outcome is Outcome.RETRYABLE


@pytest.mark.parametrize("status", [408, 429])
def test_request_timeout_and_rate_limit_are_retryable_despite_being_4xx(status: int) -> None:
    result = classify_response(status, b"slow down", event_version=1)
    assert result.outcome is Outcome.RETRYABLE
    assert str(status) in result.detail


def test_no_answer_is_retryable() -> None:
    result = classify_transport_error("timeout", "no answer")
    assert result.outcome is Outcome.RETRYABLE
    assert result.detail.startswith("timeout")


def test_long_error_bodies_are_cut_in_the_detail() -> None:
    assert len(classify_response(500, b"x" * 10_000, event_version=1).detail) < 300


NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def step(outcome: Outcome, *, left: timedelta = DAY, retries_done: int = 0, **kwargs: Any) -> NextStep:
    options: dict[str, Any] = {"max_retries": None, "retry_in_s": 8.0, **kwargs}
    return next_step(outcome, now=NOW, deliver_by=NOW + left, retries_done=retries_done, **options)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome.APPLIED, SyncStatus.SUCCESS),
        (Outcome.ALREADY_APPLIED, SyncStatus.SUCCESS),
        (Outcome.SUPERSEDED, SyncStatus.SUPERSEDED),
        (Outcome.REJECTED, SyncStatus.FAILED),
        (Outcome.RETRYABLE, SyncStatus.RETRYING),
    ],
)
def test_status_after_an_attempt(outcome: Outcome, expected: SyncStatus) -> None:
    assert step(outcome).status is expected


def test_a_permanent_refusal_fails_at_once_as_rejected() -> None:
    assert step(Outcome.REJECTED) == NextStep(SyncStatus.FAILED, dead_letter_reason=DeadLetterReason.REJECTED)


def test_transient_failures_retry_by_time_however_many_tries_were_spent() -> None:
    result = step(Outcome.RETRYABLE, retries_done=10_000, left=timedelta(minutes=1))
    assert result == NextStep(SyncStatus.RETRYING, delay_s=8.0)


def test_a_passed_deadline_fails_with_reason_deadline() -> None:
    for left in (timedelta(0), timedelta(seconds=-1)):
        result = step(Outcome.RETRYABLE, left=left)
        assert result == NextStep(SyncStatus.FAILED, dead_letter_reason=DeadLetterReason.DEADLINE)


def test_a_success_after_the_deadline_is_still_a_success() -> None:
    assert step(Outcome.APPLIED, left=-DAY).status is SyncStatus.SUCCESS


def test_the_last_try_is_made_at_the_deadline_not_after_it() -> None:
    result = step(Outcome.RETRYABLE, left=timedelta(seconds=3), retry_in_s=300.0)
    assert (result.status, result.delay_s) == (SyncStatus.RETRYING, 3.0)


def test_the_optional_count_cap_fails_with_retries_exhausted() -> None:
    assert step(Outcome.RETRYABLE, retries_done=2, max_retries=3).status is SyncStatus.RETRYING
    assert step(Outcome.RETRYABLE, retries_done=3, max_retries=3) == NextStep(
        SyncStatus.FAILED, dead_letter_reason=DeadLetterReason.RETRIES_EXHAUSTED
    )


def test_a_failed_probe_spends_nothing_of_the_record() -> None:
    result = step(Outcome.RETRYABLE, retries_done=3, max_retries=3, probe=True, retry_in_s=60.0)
    assert result == NextStep(SyncStatus.RETRYING, delay_s=60.0, counted=False)
    # Only time passes for it: past the deadline a probe's record fails too, still without a try spent.
    late = step(Outcome.RETRYABLE, left=timedelta(0), probe=True)
    assert late == NextStep(SyncStatus.FAILED, dead_letter_reason=DeadLetterReason.DEADLINE, counted=False)
    # A probe that gets an answer is a real attempt.
    assert step(Outcome.APPLIED, probe=True) == NextStep(SyncStatus.SUCCESS, counted=True)


def test_backoff_doubles_from_one_second_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(max_retries=None, base_s=1.0, max_s=300.0, jitter=lambda value: value)
    delays = [policy.delay_before_retry(n) for n in range(1, 13)]
    assert delays == pytest.approx([1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300])
    assert policy.delay_before_retry(10_000) == 300.0  # a ten-hour outage's thousandth retry


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(max_retries=6, base_s=0.2, max_s=1.0, jitter=lambda value: value)
    assert [policy.delay_before_retry(n) for n in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_stays_between_zero_and_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_retries=3, base_s=0.2, max_s=5.0)
    for retry_number, ceiling in ((1, 0.2), (2, 0.4), (3, 0.8)):
        delays = [policy.delay_before_retry(retry_number) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1


def test_equal_jitter_spreads_between_half_the_ceiling_and_the_cap() -> None:
    policy = RetryPolicy(max_retries=None, base_s=1.0, max_s=300.0, jitter=equal_jitter)
    for retry_number, ceiling in ((1, 1.0), (4, 8.0), (20, 300.0)):
        delays = [policy.delay_before_retry(retry_number) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1

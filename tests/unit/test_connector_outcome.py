"""Outcome classification, status transitions and the retry policy of the sync-connector."""

from __future__ import annotations

import pytest

from services.sync_connector.outcome import (
    Outcome,
    RetryPolicy,
    SyncStatus,
    classify_response,
    classify_transport_error,
    status_after,
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


@pytest.mark.parametrize(
    ("outcome", "retries_done", "expected"),
    [
        (Outcome.APPLIED, 0, SyncStatus.SUCCESS),
        (Outcome.ALREADY_APPLIED, 2, SyncStatus.SUCCESS),
        (Outcome.SUPERSEDED, 0, SyncStatus.SUPERSEDED),
        (Outcome.REJECTED, 0, SyncStatus.FAILED),
        (Outcome.RETRYABLE, 0, SyncStatus.RETRYING),
        (Outcome.RETRYABLE, 2, SyncStatus.RETRYING),
        (Outcome.RETRYABLE, 3, SyncStatus.FAILED),
    ],
)
def test_status_after_an_attempt(outcome: Outcome, retries_done: int, expected: SyncStatus) -> None:
    assert status_after(outcome, retries_done, max_retries=3) is expected


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(max_retries=6, base_s=0.2, max_s=1.0, jitter=lambda value: value)
    assert [policy.delay_before_retry(n) for n in range(1, 6)] == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_full_jitter_stays_between_zero_and_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_retries=3, base_s=0.2, max_s=5.0)
    for retry_number, ceiling in ((1, 0.2), (2, 0.4), (3, 0.8)):
        delays = [policy.delay_before_retry(retry_number) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1

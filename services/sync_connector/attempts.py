"""One call's result: what it makes of the record, and its log line."""

from __future__ import annotations

import msgspec
import structlog

from services.sync_connector.outcome import Classification, Outcome, SyncStatus


class CallResult(msgspec.Struct, frozen=True):
    """One call's result and what it makes of the record."""

    classification: Classification
    http_status: int | None
    status: SyncStatus
    delay_s: float  # before the next attempt, when status is retrying
    duration_s: float

    @property
    def error(self) -> str | None:
        return None if self.status is SyncStatus.SUCCESS else self.classification.detail

    @property
    def dead_letter_reason(self) -> str:
        return "retries_exhausted" if self.classification.outcome is Outcome.RETRYABLE else "rejected"


def log_attempt(
    logger: structlog.stdlib.BoundLogger,
    status: SyncStatus,
    classification: Classification,
    *,
    http_status: int | None,
    retries: int,
    delay_s: float,
) -> None:
    fields = {"outcome": classification.outcome.value, "http_status": http_status, "retry_count": retries}
    if status is SyncStatus.SUCCESS:
        logger.info("sync_succeeded", **fields)
    elif status is SyncStatus.SUPERSEDED:
        logger.info("sync_superseded", detail=classification.detail, **fields)
    elif status is SyncStatus.RETRYING:
        logger.warning("sync_retry_scheduled", error=classification.detail, retry_in_s=round(delay_s, 3), **fields)
    else:
        permanent = classification.outcome is not Outcome.RETRYABLE
        logger.error("sync_failed_dead_lettered", error=classification.detail, permanent=permanent, **fields)

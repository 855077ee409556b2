"""One call's result: what it makes of the record, and its log line."""

from __future__ import annotations

from datetime import datetime

import msgspec
import structlog

from services.sync_connector.outcome import Classification, DeadLetterReason, NextStep, SyncStatus


class Attempted(msgspec.Struct, frozen=True):
    """What one call of a channel tells the delivery engine."""

    classification: Classification
    http_status: int | None = None
    # False: the channel was not called (no contact data, an invalid address, the contact lookup failed):
    # its breaker learns nothing, and a trial permit goes back.
    reached: bool = True
    # A terminal status of the channel's own instead of the retry rule's (skipped_no_contact).
    final_status: str | None = None
    label: str | None = None  # the attempts metric's result label (default: the outcome)
    extra: dict[str, str | None] = msgspec.field(default_factory=dict)  # channel data to store with the result


class CallResult(msgspec.Struct, frozen=True):
    """One call's result and what it makes of the record."""

    attempted: Attempted
    step: NextStep
    deliver_by: datetime  # the record's deadline (set now when an admin re-drive had cleared it)
    duration_s: float

    @property
    def classification(self) -> Classification:
        return self.attempted.classification

    @property
    def http_status(self) -> int | None:
        return self.attempted.http_status

    @property
    def status(self) -> SyncStatus:
        return self.step.status

    @property
    def delay_s(self) -> float:
        """Before the next attempt, when status is retrying."""
        return self.step.delay_s

    @property
    def counted(self) -> bool:
        return self.step.counted

    @property
    def error(self) -> str | None:
        done = self.status is SyncStatus.SUCCESS and self.attempted.final_status is None
        if done:
            return None
        if self.step.dead_letter_reason is DeadLetterReason.DEADLINE:
            return f"delivery deadline passed. Last error: {self.classification.detail}"
        return self.classification.detail

    @property
    def dead_lettered(self) -> bool:
        return self.status is SyncStatus.FAILED

    @property
    def dead_letter_reason(self) -> str:
        return (self.step.dead_letter_reason or DeadLetterReason.REJECTED).value


def log_attempt(
    logger: structlog.stdlib.BoundLogger,
    result: CallResult,
    *,
    retries: int,
) -> None:
    classification, status = result.classification, result.status
    fields = {"outcome": classification.outcome.value, "http_status": result.http_status, "retry_count": retries}
    if status is SyncStatus.SUCCESS:
        logger.info("sync_succeeded", **fields)
    elif status is SyncStatus.SUPERSEDED:
        logger.info("sync_superseded", detail=classification.detail, **fields)
    elif status is SyncStatus.RETRYING:
        event = "sync_retry_scheduled" if result.counted else "sync_probe_failed"
        logger.warning(
            event,
            error=classification.detail,
            retry_in_s=round(result.delay_s, 3),
            deliver_by=result.deliver_by.isoformat(),
            **fields,
        )
    else:
        reason = result.dead_letter_reason
        logger.error(
            "sync_failed_dead_lettered",
            reason=reason,
            error=classification.detail,
            permanent=reason == DeadLetterReason.REJECTED,
            deliver_by=result.deliver_by.isoformat(),
            **fields,
        )

"""Dead letters: an event one external system could not apply, on ``customer-profile.v1.dlq.<system>``.

A dead letter is the original message unchanged (same key, value and CloudEvents headers,
so it decodes like any event) plus the ``dlq_*`` headers below saying why it was given up.
Re-driving it means producing the value and original headers back, or retrying the sync
record through the connector's admin API.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec


class DeadLetterReason(StrEnum):
    REJECTED = "rejected"  # the system answered 4xx: retrying cannot help
    RETRIES_EXHAUSTED = "retries_exhausted"  # 5xx, timeouts or connection errors up to max_retry_count
    UNDECODABLE = "undecodable"  # headers or value did not match the contract


class DeadLetterHeaders(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The headers a dead letter adds to the original message's headers (UTF-8 strings)."""

    dlq_system_code: Annotated[str, msgspec.Meta(description="External system that gave up.", examples=["CRM"])]
    dlq_reason: Annotated[DeadLetterReason, msgspec.Meta(description="Why the event was dead-lettered.")]
    dlq_error: Annotated[str, msgspec.Meta(description="Last error, truncated to 1000 characters.")]
    dlq_attempts: Annotated[str, msgspec.Meta(pattern="^[0-9]+$", description="HTTP attempts made (decimal).")]
    dlq_failed_at: Annotated[datetime, msgspec.Meta(tz=True, description="When it was given up (RFC 3339).")]
    dlq_source_topic: Annotated[str, msgspec.Meta(description="Topic the event was consumed from.")]
    dlq_source_partition: Annotated[str, msgspec.Meta(pattern="^[0-9]+$", description="Its partition (decimal).")]
    dlq_source_offset: Annotated[str, msgspec.Meta(pattern="^[0-9]+$", description="Its offset (decimal).")]
    dlq_http_status: (
        Annotated[str, msgspec.Meta(pattern="^[1-5][0-9]{2}$", description="Last HTTP status, if any answer came.")]
        | msgspec.UnsetType
    ) = msgspec.UNSET


ERROR_MAX_CHARS = 1000


def dead_letter_headers(
    *,
    system_code: str,
    reason: DeadLetterReason,
    error: str,
    attempts: int,
    failed_at: datetime,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    http_status: int | None = None,
) -> dict[str, str]:
    """The ``dlq_*`` headers to add to the original message's headers."""
    headers = {
        "dlq_system_code": system_code,
        "dlq_reason": reason.value,
        "dlq_error": error[:ERROR_MAX_CHARS],
        "dlq_attempts": str(attempts),
        "dlq_failed_at": failed_at.isoformat().replace("+00:00", "Z"),
        "dlq_source_topic": source_topic,
        "dlq_source_partition": str(source_partition),
        "dlq_source_offset": str(source_offset),
    }
    if http_status is not None:
        headers["dlq_http_status"] = str(http_status)
    return headers

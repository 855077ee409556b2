"""Dead letters: an event one external system could not apply, on ``customer-profile.v1.dlq.<system>``.

A dead letter is the original event again (same key, value and CloudEvents headers, so it
decodes like any event) plus the ``x-dlq-*`` headers below saying why it was given up.
It is delivered at least once: deduplicate on ``ce_id`` + ``x-dlq-system``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import msgspec

REASON_HEADER = "x-dlq-reason"
SYSTEM_HEADER = "x-dlq-system"
ATTEMPTS_HEADER = "x-dlq-attempts"
RECORD_ID_HEADER = "x-dlq-record-id"
REASON_MAX_CHARS = 500


class DeadLetterReason(StrEnum):
    REJECTED = "rejected"  # the system answered 4xx: retrying cannot help
    RETRIES_EXHAUSTED = "retries_exhausted"  # 5xx, timeouts or connection errors up to max_retry_count


_REASON_PATTERN = "^(" + "|".join(reason.value for reason in DeadLetterReason) + "): "
_DECIMAL = "^[0-9]+$"


class DeadLetterHeaders(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The headers a dead letter adds to the original event's headers (UTF-8 strings)."""

    reason: Annotated[
        str,
        msgspec.Meta(
            pattern=_REASON_PATTERN,
            max_length=REASON_MAX_CHARS,
            description="Why: 'rejected: <last error>' or 'retries_exhausted: <last error>'.",
            examples=["retries_exhausted: HTTP 503: maintenance"],
        ),
    ] = msgspec.field(name=REASON_HEADER)
    system: Annotated[
        Literal["CRM", "CMS", "CSS"], msgspec.Meta(description="The external system that gave the event up.")
    ] = msgspec.field(name=SYSTEM_HEADER)
    attempts: Annotated[str, msgspec.Meta(pattern=_DECIMAL, description="HTTP attempts made (decimal).")] = (
        msgspec.field(name=ATTEMPTS_HEADER)
    )
    record_id: Annotated[
        str, msgspec.Meta(pattern=_DECIMAL, description="The connector's sync record id, for its admin API (decimal).")
    ] = msgspec.field(name=RECORD_ID_HEADER)

"""Dead-letter messages: what goes to ``<topic>.dlq.<system>`` for a claimed row, built from it.

The message is the original CloudEvent again (same ``ce_*`` headers and trace
context, the event rebuilt from the stored payload) plus ``x-dlq-reason``
(``retries_exhausted: <last error>`` or ``rejected: <last error>``),
``x-dlq-system``, ``x-dlq-attempts`` and ``x-dlq-record-id``.

Messages the consumer can never process (``sync.unprocessable_messages``, see
``unprocessable``) go out the same way, as they were read (key, value, headers)
plus ``x-dlq-reason`` (``undecodable: ...`` or ``handler_failed: ...``),
``x-dlq-system``, ``x-dlq-attempts``, ``x-dlq-source`` (``topic/partition/offset``)
and ``x-dlq-unprocessable-id``.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, encode_event
from services.sync_connector.sinks import event_from_payload
from services.sync_connector.unprocessable import decoded_headers

MAX_REASON_LENGTH = 500


class DeadLetter(msgspec.Struct, frozen=True):
    id: int
    record_id: int
    event_id: str
    system_code: str
    customer_id: str
    reason: str
    payload: str
    headers: dict[str, str]
    last_error: str | None
    attempts: int
    created_at: datetime


class UnprocessableLetter(msgspec.Struct, frozen=True):
    """A claimed row of ``sync.unprocessable_messages``."""

    id: int
    system_code: str
    topic: str
    kafka_partition: int
    kafka_offset: int
    message_key: bytes | None
    message_value: bytes | None
    headers: str  # JSON: [[name, base64 value], ...]
    event_id: str | None
    customer_id: str | None
    reason: str
    error: str
    failures: int


class Outgoing(msgspec.Struct, frozen=True):
    """One message for a dead-letter topic, and the row it comes from."""

    table: str  # "dead_letters" or "unprocessable_messages"
    id: int
    system_code: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    log_fields: dict[str, object]


def dead_letter_message(letter: DeadLetter) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of the dead-letter message."""
    event = event_from_payload(letter.payload)
    headers = dict(letter.headers)
    if "ce_id" not in headers:  # a record written before sync_0002 stored no headers: rebuild them
        attributes = CloudEventAttributes(
            id=letter.event_id,
            source=EVENT_SOURCE,
            type=NAME_CHANGED_TYPE,
            time=event.changed_at,
            subject=event.customer_id,
        )
        headers = kafka_headers(attributes, {})
    reason = f"{letter.reason}: {letter.last_error or ''}"[:MAX_REASON_LENGTH]
    headers |= {
        "x-dlq-reason": reason,
        "x-dlq-system": letter.system_code,
        "x-dlq-attempts": str(letter.attempts),
        "x-dlq-record-id": str(letter.record_id),
    }
    return encode_event(event), [(key, value.encode()) for key, value in headers.items()]


def unprocessable_message(letter: UnprocessableLetter) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers of an unprocessable message's dead letter: as it was read, plus x-dlq-*."""
    ours = {
        "x-dlq-reason": f"{letter.reason}: {letter.error}"[:MAX_REASON_LENGTH],
        "x-dlq-system": letter.system_code,
        "x-dlq-attempts": str(letter.failures),
        "x-dlq-source": f"{letter.topic}/{letter.kafka_partition}/{letter.kafka_offset}",
        "x-dlq-unprocessable-id": str(letter.id),
    }
    stored = msgspec.json.decode(letter.headers, type=list[tuple[str, str]])
    received = [(name, value) for name, value in decoded_headers(stored) if name not in ours]
    return letter.message_value, received + [(name, value.encode()) for name, value in ours.items()]


def outgoing_letter(letter: DeadLetter) -> Outgoing:
    fields: dict[str, object] = {
        "dead_letter_id": letter.id,
        "record_id": letter.record_id,
        "event_id": letter.event_id,
    }
    return Outgoing("dead_letters", letter.id, letter.system_code, letter.customer_id.encode(), None, [], fields)


def outgoing_unprocessable(row: UnprocessableLetter) -> Outgoing:
    fields: dict[str, object] = {"unprocessable_id": row.id, "event_id": row.event_id, "reason": row.reason}
    return Outgoing("unprocessable_messages", row.id, row.system_code, row.message_key, None, [], fields)

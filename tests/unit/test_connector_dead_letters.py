"""The dead-letter message: the original CloudEvent again, plus x-dlq-* headers."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.v1.kafka import KafkaMessage, from_binary

from contracts.events import NAME_CHANGED_TYPE, decode_event
from services.sync_connector.dead_letter_messages import MAX_REASON_LENGTH, DeadLetter, dead_letter_message
from services.sync_connector.sinks import encode_payload
from tests.connector_support import name_changed

EVENT_ID = "2b1c6a4e-6f0e-4c55-9a43-3f1f9d7f2a10"
EVENT = name_changed("C1", 3)


def letter(headers: dict[str, str], last_error: str = "HTTP 400: bad") -> DeadLetter:
    return DeadLetter(
        id=1,
        record_id=7,
        event_id=EVENT_ID,
        system_code="CMS",
        customer_id="C1",
        reason="rejected",
        payload=encode_payload(EVENT_ID, EVENT).decode(),
        headers=headers,
        last_error=last_error,
        attempts=1,
        created_at=datetime.now(UTC),
    )


def test_the_source_headers_are_copied_and_the_event_rebuilt() -> None:
    source = {
        "ce_specversion": "1.0",
        "ce_id": EVENT_ID,
        "ce_source": "urn:customer-profile:profile-service",
        "ce_type": NAME_CHANGED_TYPE,
        "ce_time": "2024-05-01T08:30:00Z",
        "ce_subject": "C1",
        "content-type": "application/json",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    value, raw_headers = dead_letter_message(letter(source))
    headers = {key: raw.decode() for key, raw in raw_headers}
    assert {k: headers[k] for k in source} == source
    assert headers["x-dlq-reason"] == "rejected: HTTP 400: bad"
    assert (headers["x-dlq-system"], headers["x-dlq-attempts"], headers["x-dlq-record-id"]) == ("CMS", "1", "7")
    assert decode_event(value) == EVENT


def test_records_without_stored_headers_get_rebuilt_cloudevents_headers() -> None:
    value, raw_headers = dead_letter_message(letter({}, last_error="x" * 5_000))
    headers = dict(raw_headers)
    event = from_binary(KafkaMessage(headers=headers, key=b"C1", value=value))
    assert (event["id"], event["type"], event["subject"]) == (EVENT_ID, NAME_CHANGED_TYPE, "C1")
    assert len(headers["x-dlq-reason"]) == MAX_REASON_LENGTH

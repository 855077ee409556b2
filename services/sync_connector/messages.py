"""Kafka message -> (event id, event): CloudEvents headers and the JSON value."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

import msgspec

from contracts.cloudevents import event_id, parse_kafka_headers
from contracts.events import NAME_CHANGED_TYPE, CustomerNameChanged, decode_event

# Column widths of sync.external_sync_records: a longer value would fail every
# insert and block its partition forever, so it is rejected here instead.
MAX_ID_LENGTH = 50
MAX_VERSION = 2**31 - 1


class KafkaMessage(Protocol):
    """The fields of aiokafka's ConsumerRecord the connector reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class UndecodableMessageError(Exception):
    """Headers or value are not a valid CloudEvent of a known shape; the message is skipped."""


class DecodedMessage(msgspec.Struct, frozen=True):
    event_id: str
    event_type: str
    headers: dict[str, str]
    event: CustomerNameChanged | None  # None for event types this connector does not handle


def decode_message(message: KafkaMessage) -> DecodedMessage:
    try:
        headers = parse_kafka_headers(message.headers or ())
        ce_id = str(uuid.UUID(event_id(headers)))
        ce_type = headers["ce_type"]
    except (KeyError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        msg = f"bad CloudEvents headers: {exc!r}"
        raise UndecodableMessageError(msg) from exc
    if ce_type != NAME_CHANGED_TYPE:
        return DecodedMessage(ce_id, ce_type, headers, None)
    if message.value is None:
        msg = "empty value"
        raise UndecodableMessageError(msg)
    try:
        event = decode_event(message.value)
    except msgspec.DecodeError as exc:
        msg = f"bad event value: {exc}"
        raise UndecodableMessageError(msg) from exc
    if max(len(event.customer_id), len(event.application_id)) > MAX_ID_LENGTH:
        msg = f"customerId/applicationId longer than {MAX_ID_LENGTH}"
        raise UndecodableMessageError(msg)
    if not 0 <= event.profile_version <= MAX_VERSION:
        msg = f"profileVersion {event.profile_version} out of range"
        raise UndecodableMessageError(msg)
    return DecodedMessage(ce_id, ce_type, headers, event)

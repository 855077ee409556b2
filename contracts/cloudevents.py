"""CloudEvents 1.0 Kafka binary content mode: attributes as ``ce_*`` headers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"
TRACE_HEADERS = ("traceparent", "tracestate")


class CloudEventAttributes(msgspec.Struct, frozen=True):
    id: str
    source: str
    type: str
    time: datetime
    subject: str


def kafka_headers(attributes: CloudEventAttributes, trace_context: Mapping[str, str]) -> dict[str, str]:
    """The Kafka headers of one event, trace context included."""
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": attributes.id,
        "ce_source": attributes.source,
        "ce_type": attributes.type,
        "ce_time": attributes.time.isoformat().replace("+00:00", "Z"),
        "ce_subject": attributes.subject,
        "content-type": CONTENT_TYPE,
    }
    headers.update({k: v for k, v in trace_context.items() if k in TRACE_HEADERS})
    return headers


def parse_kafka_headers(raw: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    return {key: value.decode() for key, value in raw}


def event_id(headers: Mapping[str, str]) -> str:
    return headers["ce_id"]

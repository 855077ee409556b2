"""CloudEvents 1.0 Kafka binary content mode: attributes as ``ce_*`` headers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Literal

import msgspec

CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"
TRACE_HEADERS = ("traceparent", "tracestate")
# W3C Trace Context, version 00: 00-<trace id>-<parent span id>-<flags>.
TRACEPARENT_PATTERN = "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
# Examples for the published header schema only (this module knows no event types).
EXAMPLE_SOURCE = "urn:customer-profile:profile-service"
EXAMPLE_TYPE = "customer.profile.name-changed.v1"


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


Traceparent = Annotated[
    str,
    msgspec.Meta(
        pattern=TRACEPARENT_PATTERN,
        description="W3C trace context of the transaction that wrote the event (absent if it was not traced).",
    ),
]
Tracestate = Annotated[str, msgspec.Meta(description="W3C trace state, when the producer had one.")]


class EventHeaders(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The Kafka headers of every message on customer-profile.v1 (UTF-8 strings); ignore unknown ones."""

    ce_specversion: Annotated[Literal["1.0"], msgspec.Meta(description="CloudEvents spec version.")]
    ce_id: Annotated[
        uuid.UUID,
        msgspec.Meta(description="Event id, unique per event; the same on every redelivery. Deduplicate on it."),
    ]
    ce_source: Annotated[str, msgspec.Meta(description="Producer.", examples=[EXAMPLE_SOURCE])]
    ce_type: Annotated[
        str, msgspec.Meta(description="Event type; selects the payload schema.", examples=[EXAMPLE_TYPE])
    ]
    ce_time: Annotated[datetime, msgspec.Meta(tz=True, description="When the change was committed (RFC 3339).")]
    ce_subject: Annotated[str, msgspec.Meta(description="The customer id (equal to the message key).")]
    content_type: Annotated[Literal["application/json"], msgspec.Meta(description="Payload encoding.")] = msgspec.field(
        name="content-type"
    )
    traceparent: Traceparent | msgspec.UnsetType = msgspec.UNSET
    tracestate: Tracestate | msgspec.UnsetType = msgspec.UNSET

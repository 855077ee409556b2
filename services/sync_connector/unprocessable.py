"""Messages the consumer can never process: the error classes, and the dead letter of one message.

A handler error is *transient* when waiting can clear it: the database or the broker unavailable,
a timeout (``classify_processing_error``). The partition worker retries those with backoff for as
long as they last, and its partition waits (nothing may be lost). Any other error may be the
message itself: undecodable (not a CloudEvent of a known shape, outside the contract), data the
database refuses (a NUL in a name), or a handler bug it triggers. Such a message is *unprocessable*
when it fails alone ``unprocessable_after_failures`` times in a row (undecodable ones at once): it
is dead-lettered alone, here, and the partition goes on with the next messages.

The dead letter keeps the message as it was read (coordinates, key, value, headers) in
``sync.unprocessable_messages`` (unique on the coordinates, so a redelivery adds nothing); the
dead-letter publisher then puts it on the system's dead-letter topic as it was, plus ``x-dlq-*``
headers. Each one is a metric (``messages_unprocessable_total{system_code, reason}``) and an error
log line ``message_unprocessable`` with the message's trace id.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.logging import get_logger
from libs.kit.telemetry import span_context_from_traceparent
from services.sync_connector.db_faults import DATABASE_FAULTS, is_transient_database_fault
from services.sync_connector.messages import KafkaMessage

log = get_logger(__name__)

UNDECODABLE = "undecodable"
HANDLER_FAILED = "handler_failed"
MAX_TEXT = 500  # of an error, an event id or a customer id stored or logged


def classify_processing_error(exc: BaseException) -> tuple[str, bool]:
    """The ``kind`` of a handler's error (the ``message_processing_errors_total`` label) and whether it is
    transient: waiting can clear it, so the message is retried, never dead-lettered for it."""
    if isinstance(exc, KafkaError):
        return "broker", True
    if isinstance(exc, TimeoutError):
        return "timeout", True
    if isinstance(exc, DATABASE_FAULTS):
        return ("database", True) if is_transient_database_fault(exc) else ("refused_data", False)
    return "unexpected", False


@dataclass(frozen=True)
class Rejected:
    """A message a handler can never decode, and why."""

    message: KafkaMessage
    error: str


class UndecodableMessagesError(Exception):
    """Raised by a handler before it processes anything: these messages of the batch can never be decoded.

    The partition worker dead-letters them and hands the handler the rest of the batch again.
    """

    def __init__(self, rejected: Sequence[Rejected]) -> None:
        super().__init__(f"{len(rejected)} undecodable message(s)")
        self.rejected = list(rejected)


class UnprocessableMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_lettered = Counter(
            "messages_unprocessable",
            "Messages dead-lettered alone because they can never be processed, by reason: undecodable or "
            "handler_failed (a non-transient error every time the message was handled alone)",
            ["system_code", "reason"],
            registry=registry,
        )


_INSERT = text("""
    INSERT INTO sync.unprocessable_messages
        (system_code, topic, kafka_partition, kafka_offset, message_key, message_value, headers, event_id,
         customer_id, trace_id, reason, error, failures)
    VALUES (:system_code, :topic, :partition, :offset, :key, :value, CAST(:headers AS jsonb), :event_id,
            :customer_id, :trace_id, :reason, :error, :failures)
    ON CONFLICT (system_code, topic, kafka_partition, kafka_offset) DO NOTHING
    RETURNING id
""")


class MessageFacts(msgspec.Struct, frozen=True):
    """What can be read of any message, however broken: for the row, the log line and the metric."""

    event_id: str | None
    customer_id: str | None
    trace_id: str | None
    traceparent: str | None


def message_facts(message: KafkaMessage) -> MessageFacts:
    headers = {name: value for name, value in (message.headers or ()) if isinstance(value, bytes | bytearray)}
    traceparent = _readable(headers.get("traceparent"))
    span_context = span_context_from_traceparent(traceparent)
    return MessageFacts(
        event_id=_readable(headers.get("ce_id")),
        customer_id=_readable(message.key),
        trace_id=format(span_context.trace_id, "032x") if span_context is not None else None,
        traceparent=traceparent,
    )


def encoded_headers(message: KafkaMessage) -> str:
    """The headers as received, as JSON: ``[[name, base64 value], ...]`` (values are bytes, in order)."""
    return msgspec.json.encode(
        [[name, base64.b64encode(value or b"").decode()] for name, value in (message.headers or ())]
    ).decode()


def decoded_headers(stored: Sequence[Sequence[str]]) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in stored]


class UnprocessableMessages:
    """Dead-letters one message: its row (once per coordinates), the metric, the log line, then wakes the
    publisher."""

    def __init__(
        self, engine: AsyncEngine, metrics: UnprocessableMetrics, on_recorded: Callable[[], None] = lambda: None
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self.on_recorded = on_recorded

    async def record(self, system_code: str, message: KafkaMessage, *, reason: str, error: str, failures: int) -> None:
        """Raises a database fault when it could not be written (the caller retries: it must not be skipped
        before it is recorded)."""
        facts = message_facts(message)
        params = {
            "system_code": system_code,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key,
            "value": message.value,
            "headers": encoded_headers(message),
            "event_id": _storable(facts.event_id),
            "customer_id": _storable(facts.customer_id),
            "trace_id": facts.trace_id,
            "reason": reason,
            "error": _storable(error) or "",
            "failures": failures,
        }
        async with self._engine.begin() as connection:
            row_id = (await connection.execute(_INSERT, params)).scalar_one_or_none()
        where = {
            "system_code": system_code,
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "event_id": params["event_id"],
            "customer_id": params["customer_id"],
            "trace_id": facts.trace_id,
        }
        if row_id is None:  # a redelivery of one already dead-lettered
            log.info("message_unprocessable_again", reason=reason, **where)
            return
        self._metrics.dead_lettered.labels(system_code, reason).inc()
        span_context = span_context_from_traceparent(facts.traceparent)
        with trace.use_span(NonRecordingSpan(span_context) if span_context else trace.INVALID_SPAN):
            log.error(
                "message_unprocessable",
                reason=reason,
                error=params["error"],
                failures=failures,
                unprocessable_id=row_id,
                **where,
            )
        self.on_recorded()


def _readable(raw: bytes | bytearray | None) -> str | None:
    if raw is None:
        return None
    return bytes(raw).decode(errors="replace")


def _storable(value: str | None) -> str | None:
    """Text PostgreSQL takes (no NUL), bounded."""
    if value is None:
        return None
    return value.replace("\x00", "\ufffd")[:MAX_TEXT]

"""The Kafka side of the relay: the claimed row, the producer's lifecycle, publish spans, error kinds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from libs.kit.logging import get_logger
from libs.kit.telemetry import span_context_from_traceparent
from libs.outbox.metrics import RelayMetrics
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)
tracer = trace.get_tracer("libs.outbox.relay")

ProducerFactory = Callable[[], AIOKafkaProducer]

# Errors that belong to one message: retrying cannot help, so they count towards parking.
_PER_MESSAGE_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    ValueError,  # our own encoding of the row (headers, key, value)
    TypeError,
)


class ClaimedRow(msgspec.Struct, frozen=True):
    id: Any
    seq: int
    shard: int
    aggregate_id: str
    payload: str
    headers: str
    attempts: int


class MalformedRowError(ValueError):
    """The stored row cannot be turned into a Kafka message."""


def is_per_message(error: BaseException) -> bool:
    return isinstance(error, _PER_MESSAGE_ERRORS)


class ManagedProducer:
    """Builds the producer on first use and rebuilds it after ``producer_reset_after`` failing batches."""

    def __init__(self, factory: ProducerFactory, settings: RelaySettings, metrics: RelayMetrics) -> None:
        self._factory = factory
        self._settings = settings
        self._metrics = metrics
        self._producer: AIOKafkaProducer | None = None
        self._broker_failures = 0

    async def ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._factory()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), timeout=self._settings.shutdown_grace_s)
                raise
            self._producer = producer
        return self._producer

    def succeeded(self) -> None:
        self._broker_failures = 0

    async def failed(self) -> None:
        """A batch failed with a broker error; after several in a row, start afresh."""
        self._broker_failures += 1
        if self._broker_failures >= self._settings.producer_reset_after and self._producer is not None:
            log.warning("relay_producer_reset", consecutive_failed_batches=self._broker_failures)
            self._metrics.producer_resets.inc()
            self._broker_failures = 0
            await self.close()

    async def close(self) -> None:
        """Stop the producer (bounded by the shutdown grace); the next batch builds a new one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=self._settings.shutdown_grace_s)


def publish_span(topic: str, rows: Sequence[ClaimedRow]) -> AbstractContextManager[Span]:
    """One PRODUCER span per chunk of rows, linked to each message's creation context (messaging
    conventions for batch publishing). The messages keep their own ``traceparent``, so consumers
    continue the trace of the transaction that wrote them. Links are only built when the span is
    recorded (an exporter is configured)."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "publish",
        "messaging.operation.name": "send",
        "messaging.destination.name": topic,
        "messaging.batch.message_count": len(rows),
    }
    if len(rows) == 1:
        attributes["messaging.message.id"] = str(rows[0].id)
        attributes["messaging.kafka.message.key"] = rows[0].aggregate_id
    return _linked_span(topic, rows, attributes)


@contextlib.contextmanager
def _linked_span(topic: str, rows: Sequence[ClaimedRow], attributes: dict[str, AttributeValue]) -> Iterator[Span]:
    with tracer.start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER, attributes=attributes) as span:
        if span.is_recording():
            for row in rows:
                if (context := span_context_from_traceparent(_traceparent(row))) is not None:
                    span.add_link(context)
        yield span


def _traceparent(row: ClaimedRow) -> str | None:
    try:
        headers = msgspec.json.decode(row.headers, type=dict[str, str])
    except msgspec.DecodeError:
        return None
    return headers.get("traceparent")

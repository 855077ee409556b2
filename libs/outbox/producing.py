"""The Kafka side of the relay: the producer's lifecycle, sending a batch in key order, error kinds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeAlias

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.structs import RecordMetadata
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import AttributeValue

from libs.kit.logging import get_logger
from libs.kit.telemetry import span_context_from_traceparent
from libs.outbox.metrics import RelayMetrics
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)
tracer = trace.get_tracer("libs.outbox.relay")

ProducerFactory = Callable[[], AIOKafkaProducer]
# The SDK keeps at most 128 links per span by default (OTEL_SPAN_LINK_COUNT_LIMIT).
LINKS_PER_PUBLISH_SPAN = 128
Outcome: TypeAlias = RecordMetadata | BaseException | None  # None: not sent / held back

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


async def publish_in_key_order(producer: AIOKafkaProducer, topic: str, rows: Sequence[ClaimedRow]) -> list[Outcome]:
    """Send the batch; a key stops at its first failure, and a broker error stops the batch.

    Sending is pipelined (every message handed to the producer before any acknowledgement
    is awaited); a row counts as published only if every earlier row of its key did too.
    """
    sent = await _hand_over(producer, topic, rows)
    outcomes: list[Outcome] = []
    blocked: set[str] = set()
    for row, item in zip(rows, sent, strict=True):
        outcome: Outcome
        if isinstance(item, asyncio.Future):
            try:
                outcome = await item
            except Exception as exc:  # noqa: BLE001 - a delivery failure of this message
                outcome = exc
        else:
            outcome = item
        if row.aggregate_id in blocked:
            # Delivered perhaps, but after a predecessor that was not: send it again later.
            outcome = None
        elif not isinstance(outcome, RecordMetadata):
            blocked.add(row.aggregate_id)
        outcomes.append(outcome)
    return outcomes


async def _hand_over(
    producer: AIOKafkaProducer, topic: str, rows: Sequence[ClaimedRow]
) -> list[asyncio.Future[RecordMetadata] | BaseException | None]:
    """Hand every row to the producer (None: held back behind its key's failure or a broker error)."""
    sent: list[asyncio.Future[RecordMetadata] | BaseException | None] = []
    blocked: set[str] = set()
    broker_down = False
    for start in range(0, len(rows), LINKS_PER_PUBLISH_SPAN):
        chunk = rows[start : start + LINKS_PER_PUBLISH_SPAN]
        headers = [_headers_or_error(row) for row in chunk]
        with _publish_span(topic, chunk, headers):
            for row, row_headers in zip(chunk, headers, strict=True):
                if broker_down or row.aggregate_id in blocked:
                    sent.append(None)
                    continue
                item: asyncio.Future[RecordMetadata] | BaseException
                if isinstance(row_headers, BaseException):
                    item = row_headers
                else:
                    try:
                        item = await _send(producer, topic, row, row_headers)
                    except Exception as exc:  # noqa: BLE001 - classified by the caller, recorded on the row
                        item = exc
                if isinstance(item, BaseException):
                    blocked.add(row.aggregate_id)
                    # Metadata or buffer trouble: the rest would only wait for the same timeout.
                    broker_down = not is_per_message(item)
                sent.append(item)
    return sent


def _publish_span(
    topic: str, rows: Sequence[ClaimedRow], headers: Sequence[dict[str, str] | BaseException]
) -> AbstractContextManager[Span]:
    """One PRODUCER span per chunk, linked to each message's creation context (messaging conventions
    for batch publishing). The messages keep their own ``traceparent``, so consumers continue the
    trace of the transaction that wrote them."""
    links = [
        Link(context)
        for row_headers in headers
        if isinstance(row_headers, dict)
        and (context := span_context_from_traceparent(row_headers.get("traceparent"))) is not None
    ]
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
    return tracer.start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER, links=links, attributes=attributes)


async def _send(
    producer: AIOKafkaProducer, topic: str, row: ClaimedRow, headers: dict[str, str]
) -> asyncio.Future[RecordMetadata]:
    future: asyncio.Future[RecordMetadata] = await producer.send(
        topic,
        value=row.payload.encode(),
        key=row.aggregate_id.encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )
    return future


def _headers_or_error(row: ClaimedRow) -> dict[str, str] | BaseException:
    try:
        return _decode_headers(row)
    except MalformedRowError as exc:
        return exc


def _decode_headers(row: ClaimedRow) -> dict[str, str]:
    try:
        return msgspec.json.decode(row.headers, type=dict[str, str])
    except msgspec.DecodeError as exc:  # ValidationError included
        msg = f"outbox row {row.id}: headers are not a JSON object of strings: {exc}"
        raise MalformedRowError(msg) from exc

"""The Kafka side of the relay: the producer's lifecycle, sending a batch in key order, error kinds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
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
from opentelemetry.trace import SpanKind

from libs.kit.logging import get_logger
from libs.kit.telemetry import context_from_headers
from libs.outbox.metrics import RelayMetrics
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)
tracer = trace.get_tracer("libs.outbox.relay")

ProducerFactory = Callable[[], AIOKafkaProducer]
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
    sent: list[asyncio.Future[RecordMetadata] | BaseException | None] = []
    blocked: set[str] = set()
    broker_down = False
    for row in rows:
        if broker_down or row.aggregate_id in blocked:
            sent.append(None)
            continue
        try:
            sent.append(await _send(producer, topic, row))
        except Exception as exc:  # noqa: BLE001 - classified by the caller, recorded on the row
            blocked.add(row.aggregate_id)
            sent.append(exc)
            # Metadata or buffer trouble: the rest would only wait for the same timeout.
            broker_down = not is_per_message(exc)

    outcomes: list[Outcome] = []
    blocked = set()
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


async def _send(producer: AIOKafkaProducer, topic: str, row: ClaimedRow) -> asyncio.Future[RecordMetadata]:
    headers = _decode_headers(row)
    with tracer.start_as_current_span(
        f"{topic} publish",
        context=context_from_headers(headers),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "publish",
            "messaging.destination.name": topic,
            "messaging.message.id": str(row.id),
            "messaging.kafka.message.key": row.aggregate_id,
        },
    ):
        future: asyncio.Future[RecordMetadata] = await producer.send(
            topic,
            value=row.payload.encode(),
            key=row.aggregate_id.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )
        return future


def _decode_headers(row: ClaimedRow) -> dict[str, str]:
    try:
        return msgspec.json.decode(row.headers, type=dict[str, str])
    except msgspec.DecodeError as exc:  # ValidationError included
        msg = f"outbox row {row.id}: headers are not a JSON object of strings: {exc}"
        raise MalformedRowError(msg) from exc

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

# Builds a transactional producer for the given ``transactional.id``.
ProducerFactory = Callable[[str], AIOKafkaProducer]

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


# Built once: ``msgspec.json.decode(..., type=dict[str, str])`` builds its decoder on every call (3.5x
# the decoding itself: the largest single share of the relay's CPU in a drain, py-spy).
ROW_HEADERS = msgspec.json.Decoder(dict[str, str])


class MalformedRowError(ValueError):
    """The stored row cannot be turned into a Kafka message."""


def is_per_message(error: BaseException) -> bool:
    return isinstance(error, _PER_MESSAGE_ERRORS)


def transactional_id(settings: RelaySettings, instance_id: str) -> str:
    """The ``transactional.id`` of one relay instance: a new owner of its shards derives it from the
    lease row's owner and fences it."""
    return f"outbox-relay:{settings.schema}:{settings.topic}:{instance_id}"


class FencingError(RuntimeError):
    """A previous owner's producer could not be fenced (the broker did not answer in time)."""


# Two transactional producers take turns: batch N+1 is sent in one while N's transaction, in the
# other, waits for its acknowledgements and commit (a producer has one transaction at a time). The
# claim's per-key barrier keeps the two batches' customers apart, so their order does not matter.
PRODUCER_SLOTS = 2


class ManagedProducer:
    """The instance's transactional producers: built on first use, one transaction per batch, taking
    turns, rebuilt after ``producer_reset_after`` failing batches or when a transaction cannot end.

    Why transactions: a relay paused past its lease (GC, VM stall, a cut-off host) may still hold
    records in aiokafka's queues, which it would send on waking up, after the new owner's newer
    records. The new owner first initialises the old owner's ``transactional.id``s: the broker aborts
    the old open transactions and refuses every later write of the old producers (fencing at the
    broker, not only in the database), and ``read_committed`` consumers never see what they had sent.
    """

    def __init__(
        self, factory: ProducerFactory, settings: RelaySettings, metrics: RelayMetrics, transactional_id: str
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._metrics = metrics
        self.transactional_id = transactional_id
        self._producers: list[AIOKafkaProducer | None] = [None] * PRODUCER_SLOTS
        self._in_transaction = [False] * PRODUCER_SLOTS
        self._next_slot = 0
        self._broker_failures = 0

    @property
    def _timeout_s(self) -> float:
        return self._settings.transaction_timeout_s

    async def ready(self, slot: int = 0) -> AIOKafkaProducer:
        producer = self._producers[slot]
        if producer is None:
            producer = await _started(self._factory(slot_id(self.transactional_id, slot)), self._timeout_s)
            self._producers[slot] = producer
        return producer

    async def begin(self) -> tuple[int, AIOKafkaProducer]:
        """The next slot's producer inside a new transaction (its producer id known)."""
        slot, self._next_slot = self._next_slot, (self._next_slot + 1) % PRODUCER_SLOTS
        if self._in_transaction[slot]:  # a batch abandoned with its database session
            await self.abort(slot)
        try:
            producer = await self.ready(slot)
            await asyncio.wait_for(producer.begin_transaction(), self._timeout_s)
        except BaseException:
            await self._close_slot(slot)
            raise
        self._in_transaction[slot] = True
        return slot, producer

    async def commit(self, slot: int) -> BaseException | None:
        """Commit the slot's open transaction; on failure abort it (or drop the producer) and return why."""
        producer = self._producers[slot]
        if producer is None:
            return RuntimeError("no producer")
        try:
            await asyncio.wait_for(producer.commit_transaction(), self._timeout_s)
        except Exception as exc:  # noqa: BLE001 - fenced, timed out, a batch failed: nothing is visible
            await self.abort(slot)
            return exc
        self._in_transaction[slot] = False
        return None

    async def abort(self, slot: int) -> None:
        """Abort the slot's open transaction; a producer that cannot (fenced, fatal, no answer) is dropped."""
        producer = self._producers[slot]
        if producer is None:
            return
        self._in_transaction[slot] = False
        try:
            await asyncio.wait_for(producer.abort_transaction(), self._timeout_s)
        except Exception as exc:  # noqa: BLE001 - the next batch starts with a new producer
            log.warning("relay_transaction_abort_failed", error=repr(exc))
            await self._close_slot(slot)

    async def fence(self, owner_transactional_ids: Sequence[str]) -> None:
        """Initialise each previous owner's ``transactional.id``s: the broker aborts their open
        transactions and refuses their later writes. Raises ``FencingError`` if the broker does not answer."""
        for previous in owner_transactional_ids:
            for slot in range(PRODUCER_SLOTS):
                await self._fence_one(slot_id(previous, slot))
            self._metrics.fenced_producers.inc()
            log.info("relay_previous_owner_fenced", transactional_id=previous)

    async def _fence_one(self, transactional_id: str) -> None:
        try:
            fencer = await _started(self._factory(transactional_id), self._timeout_s)
            try:
                await asyncio.wait_for(fencer.begin_transaction(), self._timeout_s)  # waits for InitProducerId
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(fencer.stop(), timeout=self._settings.shutdown_grace_s)
        except Exception as exc:
            msg = f"could not fence {transactional_id}: {exc!r}"
            raise FencingError(msg) from exc

    def succeeded(self) -> None:
        self._broker_failures = 0

    async def failed(self) -> None:
        """A batch failed with a broker error; after several in a row, start afresh."""
        self._broker_failures += 1
        if self._broker_failures >= self._settings.producer_reset_after and any(self._producers):
            log.warning("relay_producer_reset", consecutive_failed_batches=self._broker_failures)
            self._metrics.producer_resets.inc()
            self._broker_failures = 0
            await self.close()

    async def close(self) -> None:
        """Stop the producers (each bounded by the shutdown grace); the next batch builds new ones."""
        for slot in range(PRODUCER_SLOTS):
            await self._close_slot(slot)

    async def _close_slot(self, slot: int) -> None:
        producer, self._producers[slot] = self._producers[slot], None
        open_transaction, self._in_transaction[slot] = self._in_transaction[slot], False
        if producer is None:
            return
        if open_transaction:
            # stop() leaves a transaction open at the broker: read_committed consumers of its
            # partitions would see nothing past it until the broker times it out (15 s and more).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.abort_transaction(), timeout=self._settings.shutdown_grace_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), timeout=self._settings.shutdown_grace_s)


def slot_id(transactional_id: str, slot: int) -> str:
    return f"{transactional_id}:{slot}"


async def _started(producer: AIOKafkaProducer, timeout_s: float) -> AIOKafkaProducer:
    try:
        await asyncio.wait_for(producer.start(), timeout_s)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), timeout=timeout_s)
        raise
    return producer


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
        headers = ROW_HEADERS.decode(row.headers)
    except msgspec.DecodeError:
        return None
    return headers.get("traceparent")

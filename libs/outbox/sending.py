"""Sending claimed rows: one aiokafka record batch per partition, acknowledgements per row, key order.

``producer.send`` costs a coroutine, a partition lookup and a future per message (about half
of the relay's CPU when it was used). Instead the rows of a claim are appended to one
record batch per partition (``create_batch``/``send_batch``), which the producer sends as
soon as it is submitted (no linger: the batch is closed). The partition is the one the
producer's default partitioner gives the key (murmur2 over all partitions), so consumers
see the same partitioning as with ``send``. A batch's acknowledgement carries its base
offset; a row's offset is that plus its place in the batch.

A claim submits at most one record batch per partition: rows that do not fit wait, unsent,
for a later claim (their keys stop there). So no setting of the producer (idempotence off,
several requests in flight) can write a later batch of a partition before an earlier one of
the same claim; across claims, the relay sends a key's next rows only once the batch holding
its previous ones is settled (``libs.outbox.pipeline``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple, TypeAlias

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import RecordMetadata

from libs.outbox.producing import ROW_HEADERS, ClaimedRow, MalformedRowError, is_per_message, publish_span

# aiokafka's own default, used if the producer does not expose its limit.
_DEFAULT_MAX_REQUEST_SIZE = 1_048_576
# A record batch's header (61 bytes), a record's overhead (21) and the key, value and header-count
# varints (5 each): what a one-record batch adds to key, value and headers.
_FRAMING_BYTES = 128
_PARTITION_CACHE_KEYS = 100_000


class KeyPartitions:
    """The producer's default partitioner (murmur2, pure Python: ~1/8 of the relay's CPU) with the
    answer remembered per key while the topic's partitions stay the same (bounded)."""

    def __init__(self) -> None:
        self._partitioner = DefaultPartitioner()
        self._partitions: list[int] = []
        self._of_key: dict[bytes, int] = {}

    def use(self, partitions: list[int]) -> None:
        if partitions != self._partitions:
            self._partitions = partitions
            self._of_key.clear()
        elif len(self._of_key) > _PARTITION_CACHE_KEYS:
            self._of_key.clear()

    def of(self, key: bytes) -> int:
        partition = self._of_key.get(key)
        if partition is None:
            partition = self._of_key[key] = self._partitioner(key, self._partitions, self._partitions)
        return partition


class Delivered(NamedTuple):
    partition: int
    offset: int


Outcome: TypeAlias = Delivered | BaseException | None  # None: not sent, or held back behind its key


class _PartitionBatch:
    """Rows of one partition appended to one record batch."""

    __slots__ = ("builder", "error", "future", "partition")

    def __init__(self, producer: AIOKafkaProducer, partition: int) -> None:
        self.partition = partition
        self.builder: BatchBuilder = producer.create_batch()
        self.future: asyncio.Future[RecordMetadata] | None = None
        self.error: BaseException | None = None


# Per row: (its batch, its place in the batch), its own error, or None (not sent).
_Slot: TypeAlias = tuple[_PartitionBatch, int] | BaseException | None


class HandedOver:
    """One claim handed to the producer; ``acknowledged`` waits for the broker's answers."""

    def __init__(self, rows: Sequence[ClaimedRow], slots: list[_Slot]) -> None:
        self.rows = rows
        self._slots = slots

    @property
    def send_failed(self) -> bool:
        """A submitted record batch failed (known once ``acknowledged`` returned): its transaction must abort."""
        return any(batch.error is not None or batch.future is None for batch in self._batches())

    @property
    def stopped(self) -> bool:
        """Some row failed before it reached the producer (its key stopped there, or the claim did)."""
        return any(slot is None or isinstance(slot, BaseException) for slot in self._slots)

    def abandon(self) -> None:
        """Nobody will wait for the answers (the session is lost): take a failure as read when it comes."""
        for batch in self._batches():
            if batch.future is not None:
                batch.future.add_done_callback(_retrieve)

    def _batches(self) -> list[_PartitionBatch]:
        return list({id(slot[0]): slot[0] for slot in self._slots if isinstance(slot, tuple)}.values())

    async def acknowledged(self, timeout_s: float) -> list[Outcome]:
        """Per row: delivered (partition, offset), its error, or None if it was not sent.

        An idempotent producer retries a batch for as long as the broker is away; after
        ``timeout_s`` the batch counts as failed here (its transaction is then aborted)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        for batch in self._batches():
            if batch.future is not None:
                remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
                try:
                    await asyncio.wait_for(asyncio.shield(batch.future), remaining)
                except TimeoutError:
                    batch.future.add_done_callback(_retrieve)
                    batch.error = KafkaTimeoutError(f"record batch not acknowledged within {timeout_s}s")
                except Exception as exc:  # noqa: BLE001 - a delivery failure of the batch's rows
                    batch.error = exc
        outcomes: list[Outcome] = []
        for slot in self._slots:
            if not isinstance(slot, tuple):
                outcomes.append(slot)
                continue
            batch, place = slot
            if batch.future is None or batch.error is not None:  # failed, or its submission did
                outcomes.append(batch.error)
            else:
                outcomes.append(Delivered(batch.partition, batch.future.result().offset + place))
        return outcomes


def _retrieve(future: asyncio.Future[RecordMetadata]) -> None:
    if not future.cancelled():
        future.exception()


def in_key_order(rows: Sequence[ClaimedRow], outcomes: Sequence[Outcome], blocked: set[str]) -> list[Outcome]:
    """A row counts as published only if every earlier row of its key did too (``blocked`` carries
    the keys that failed in earlier batches still in flight, and gains this batch's)."""
    settled: list[Outcome] = []
    for row, outcome in zip(rows, outcomes, strict=True):
        if row.aggregate_id in blocked:
            # Delivered perhaps, but after a predecessor that was not: send it again later.
            settled.append(None)
            continue
        if not isinstance(outcome, Delivered):
            blocked.add(row.aggregate_id)
        settled.append(outcome)
    return settled


async def hand_over(
    producer: AIOKafkaProducer, topic: str, rows: Sequence[ClaimedRow], key_partitions: KeyPartitions
) -> HandedOver:
    """Append every row to its partition's batch and submit the batches; nothing is awaited from the broker.

    A key stops at its first failing row; a broker error (metadata, full buffer) stops the claim.
    """
    slots: list[_Slot] = [None] * len(rows)
    try:
        partitions = sorted(await producer.partitions_for(topic))
    except Exception as exc:  # noqa: BLE001 - classified by the caller, recorded on the row
        if rows:
            slots[0] = exc
        return HandedOver(rows, slots)
    key_partitions.use(partitions)
    max_size: int = getattr(producer, "_max_request_size", _DEFAULT_MAX_REQUEST_SIZE)
    open_batches: dict[int, _PartitionBatch] = {}
    blocked: set[str] = set()
    full: set[int] = set()
    for start in range(0, len(rows), _SPAN_ROWS):
        chunk = rows[start : start + _SPAN_ROWS]
        with publish_span(topic, chunk):
            for index in range(start, start + len(chunk)):
                row = rows[index]
                if row.aggregate_id in blocked:
                    continue
                try:
                    key, value, headers = _message(row, max_size)
                except (MalformedRowError, MessageSizeTooLargeError) as exc:
                    slots[index] = exc
                    blocked.add(row.aggregate_id)
                    continue
                partition = key_partitions.of(key)
                batch = open_batches.get(partition)
                if batch is None:
                    batch = open_batches[partition] = _PartitionBatch(producer, partition)
                metadata = (
                    None
                    if partition in full
                    else batch.builder.append(timestamp=None, key=key, value=value, headers=headers)
                )
                if metadata is None:
                    # One record batch per partition per claim: a second one could be written before
                    # the first (a retried first batch, without idempotence). The rest waits, unsent.
                    full.add(partition)
                    blocked.add(row.aggregate_id)
                    continue
                slots[index] = (batch, metadata.offset)
    for batch in open_batches.values():
        if not await _submit(producer, topic, batch):
            return _stopped(rows, slots, len(rows), batch, open_batches)
    return HandedOver(rows, slots)


# Rows per PRODUCER span: the SDK keeps at most 128 links per span (OTEL_SPAN_LINK_COUNT_LIMIT).
_SPAN_ROWS = 128


async def _submit(producer: AIOKafkaProducer, topic: str, batch: _PartitionBatch) -> bool:
    """Close and submit the batch (no linger: it is complete); False after a broker error."""
    batch.builder.close()
    try:
        batch.future = await producer.send_batch(batch.builder, topic, partition=batch.partition)
    except Exception as exc:  # noqa: BLE001 - classified by the caller, recorded on the rows
        batch.error = exc
        return False
    return True


def _stopped(
    rows: Sequence[ClaimedRow],
    slots: list[_Slot],
    stopped_at: int,
    failed: _PartitionBatch,
    open_batches: dict[int, _PartitionBatch],
) -> HandedOver:
    """A submission failed: its rows carry the error; rows of batches never submitted, and the rest, wait."""
    for index, slot in enumerate(slots):
        if isinstance(slot, tuple) and slot[0] is not failed and slot[0].future is None:
            slots[index] = None
    for index in range(stopped_at, len(rows)):
        if isinstance(slots[index], tuple):
            slots[index] = None
    open_batches.clear()
    return HandedOver(rows, slots)


def _message(row: ClaimedRow, max_size: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key = row.aggregate_id.encode()
    value = row.payload.encode()
    headers = [(name, text.encode()) for name, text in _decode_headers(row).items()]
    if _size_bound(row) <= max_size:
        return key, value, headers
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    if size > max_size:  # the producer's own check in ``send``, per message
        msg = (
            f"The message is {size} bytes when serialized which is larger than the maximum request size "
            "you have configured with the max_request_size configuration"
        )
        raise MessageSizeTooLargeError(msg)
    return key, value, headers


def _size_bound(row: ClaimedRow) -> int:
    """At least the record's ``estimate_size_in_bytes`` (4.5 us a row), from the row's text lengths: the
    exact estimate is needed only near the limit. A character is at most 4 bytes in UTF-8; a header's
    two length varints (at most 10 bytes) stand for at least 5 characters of JSON (``"":""``), so the
    headers take at most 4 bytes per character of the row's JSON too."""
    return _FRAMING_BYTES + 4 * (len(row.aggregate_id) + len(row.payload) + len(row.headers))


def _decode_headers(row: ClaimedRow) -> dict[str, str]:
    try:
        return ROW_HEADERS.decode(row.headers)
    except msgspec.DecodeError as exc:  # ValidationError included
        msg = f"outbox row {row.id}: headers are not a JSON object of strings: {exc}"
        raise MalformedRowError(msg) from exc


__all__ = ["Delivered", "HandedOver", "KeyPartitions", "Outcome", "hand_over", "in_key_order", "is_per_message"]

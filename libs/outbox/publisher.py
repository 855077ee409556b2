"""One batch: claim pending rows of the owned shards in commit order, produce, mark.

Rows of one aggregate are published in ``seq`` order, which is their commit order
because writers of one aggregate serialise on its row lock, and all rows of one
aggregate live in one shard, which one instance at a time owns. A row is marked
``published`` only when every earlier row of its aggregate in the batch was published
too; otherwise it stays pending and is sent again after them (a duplicate, never a gap
or a reordering of the outbox).

Fencing: the claim only reads shards whose lease this instance holds, and the mark and
failure updates change nothing in a shard another instance acquired since (its token
moved on). Rows published but not marked are sent again by the new owner: duplicates,
and still in order (each owner sends a key's rows in ``seq`` order from the first
unmarked one, so the first occurrence of every event keeps the commit order).

Transactions: each batch is one Kafka transaction of the instance's transactional producer
(``libs.outbox.producing``), committed once every record is acknowledged; a batch whose
transaction does not commit publishes nothing a ``read_committed`` consumer sees, and all its
rows stay pending. A new owner of an expired lease fences the previous owner's producer first.

Pipelining: the relay claims the next batch and hands it to the other of its two transactional
producers while the previous one waits for its acknowledgements, its commit and its mark. The
claim is a per-key barrier: it leaves out every key with a row in flight, so a key's next rows are
sent only after the batch holding its previous ones has settled; after any failure the next
claim starts again from the first pending row.

Failures: errors of the broker or the connection (outage, timeout, unknown topic)
leave rows pending, retried for ever. Only errors of the message itself (too large,
malformed headers) count towards ``max_attempts``, after which the row is parked as
``failed``; later rows of its aggregate then wait behind it until an admin re-drives
it, while every other aggregate keeps flowing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import asyncpg
import msgspec

from libs.kit.logging import get_logger
from libs.outbox.batch_statements import KEY_SEPARATOR, batch_statements, number_list
from libs.outbox.leases import Ownership
from libs.outbox.metrics import RelayMetrics
from libs.outbox.producing import (
    PRODUCER_SLOTS,
    ClaimedRow,
    ManagedProducer,
    ProducerFactory,
    is_per_message,
    transactional_id,
)
from libs.outbox.sending import Delivered, HandedOver, KeyPartitions, Outcome, hand_over, in_key_order
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)


class BatchResult(msgspec.Struct, frozen=True):
    claimed: int = 0
    published: int = 0
    # Rows not published because of an error (their own or the broker's).
    failed: int = 0
    # Rows not marked because an earlier row of their aggregate was not published.
    held_back: int = 0
    # Rows published but not marked: the shard's lease had moved to another instance.
    fenced: int = 0
    # A failure of the broker (not of one message): the producer may need rebuilding.
    broker_failed: bool = False

    @property
    def clean(self) -> bool:
        """Every claimed row was published and marked."""
        return not (self.failed or self.held_back or self.fenced)

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.claimed + other.claimed,
            self.published + other.published,
            self.failed + other.failed,
            self.held_back + other.held_back,
            self.fenced + other.fenced,
            self.broker_failed or other.broker_failed,
        )


class InFlightBatch(msgspec.Struct):
    """A claimed batch handed to the producer, not yet acknowledged and marked."""

    ownership: Ownership
    rows: list[ClaimedRow]
    # None: the producer could not be started; every row failed.
    handed: HandedOver | None
    started: float
    # The producer slot whose transaction holds the batch.
    slot: int = 0

    @property
    def stopped(self) -> bool:
        """Rows of it were not handed to the producer: a later batch must not overtake them."""
        return self.handed is None or self.handed.stopped

    @property
    def keys(self) -> set[str]:
        return {row.aggregate_id for row in self.rows}


class BatchPublisher:
    """Claims, produces and marks batches of one outbox table; owns the Kafka producer."""

    def __init__(
        self, producer_factory: ProducerFactory, settings: RelaySettings, metrics: RelayMetrics, instance_id: str
    ) -> None:
        self._producer = ManagedProducer(producer_factory, settings, metrics, transactional_id(settings, instance_id))
        self._key_partitions = KeyPartitions()
        self._settings = settings
        self._metrics = metrics
        self._claim_sql, self._mark_sql, self._fail_sql = batch_statements(settings.schema)

    async def relay_batch(self, conn: asyncpg.Connection, ownership: Ownership) -> BatchResult:
        """Claim, publish and mark one batch of the owned shards (nothing else in flight)."""
        rows = await self.claim(conn, ownership)
        if not rows:
            return BatchResult()
        result = await self.settle(conn, await self.send(rows, ownership), set())
        await self.account(result)
        return result

    async def warm_up(self) -> None:
        """Start the producer before the first row arrives: its connection and metadata would
        otherwise delay the first events after a start by tens of milliseconds."""
        try:
            for slot in range(PRODUCER_SLOTS):
                await self._producer.ready(slot)
        except Exception as exc:  # noqa: BLE001 - the first batch tries again
            log.warning("relay_producer_unavailable", error=repr(exc))

    async def claim(
        self, conn: asyncpg.Connection, ownership: Ownership, in_flight: InFlightBatch | None = None
    ) -> list[ClaimedRow]:
        """The next pending rows of the owned shards in ``seq`` order, leaving out the keys in flight."""
        if not ownership:
            return []
        records = await conn.fetch(
            self._claim_sql,
            list(ownership.shards),
            list(ownership.tokens),
            ownership.owner,
            self._settings.batch_size,
            KEY_SEPARATOR.join(in_flight.keys if in_flight is not None else ()),
        )
        return [ClaimedRow(*record) for record in records]

    async def send(self, rows: list[ClaimedRow], ownership: Ownership) -> InFlightBatch:
        """Hand the rows to the producer; their acknowledgements are awaited by ``settle``."""
        started = time.perf_counter()
        try:
            slot, producer = await self._producer.begin()
        except Exception as exc:  # noqa: BLE001 - any start failure is a broker problem: retry later
            log.warning("relay_producer_unavailable", error=repr(exc))
            return InFlightBatch(ownership, rows, None, started)
        self._metrics.in_flight.inc(len(rows))
        handed = await hand_over(producer, self._settings.topic, rows, self._key_partitions)
        return InFlightBatch(ownership, rows, handed, started, slot)

    async def settle(self, conn: asyncpg.Connection, batch: InFlightBatch, blocked: set[str]) -> BatchResult:
        """Wait for the batch's acknowledgements, mark what was published in key order, record failures.

        ``blocked``: keys that failed in an earlier batch still being settled; gains this batch's.
        """
        if batch.handed is None:
            return BatchResult(claimed=len(batch.rows), failed=len(batch.rows), broker_failed=True)
        rows = batch.rows
        try:
            acknowledged = await batch.handed.acknowledged(self._settings.transaction_timeout_s)
            acknowledged = await self._committed(acknowledged, batch.slot, aborting=batch.handed.send_failed)
        finally:
            self._metrics.in_flight.dec(len(rows))
        outcomes: list[Outcome] = in_key_order(rows, acknowledged, blocked)
        done = [(row, o) for row, o in zip(rows, outcomes, strict=True) if isinstance(o, Delivered)]
        errors = [(row, o) for row, o in zip(rows, outcomes, strict=True) if isinstance(o, BaseException)]
        marked = await self._mark(conn, done, batch.ownership) if done else 0
        fenced = len(done) - marked
        if errors:
            await self._record_failures(conn, errors, batch.ownership)
        self._metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        return BatchResult(
            claimed=len(rows),
            published=marked,
            failed=len(errors),
            held_back=len(rows) - len(done) - len(errors),
            fenced=fenced,
            broker_failed=any(not is_per_message(err) for _, err in errors),
        )

    async def _committed(self, acknowledged: list[Outcome], slot: int, *, aborting: bool) -> list[Outcome]:
        """Commit the batch's transaction if every record it sent was acknowledged, else abort it.
        Rows of an aborted transaction were not published: a failed commit is their error; after a
        failed send, the acknowledged rows of other keys are sent again (held back)."""
        if aborting:
            await self._producer.abort(slot)
            self._metrics.aborted_transactions.inc()
            return [None if isinstance(o, Delivered) else o for o in acknowledged]
        error = await self._producer.commit(slot)
        if error is None:
            return acknowledged
        self._metrics.aborted_transactions.inc()
        log.warning("relay_transaction_not_committed", error=repr(error))
        return [error if isinstance(o, Delivered) else o for o in acknowledged]

    async def fence(self, previous_owners: Iterable[str]) -> None:
        """Fence the producers of the instances whose expired leases this one took (``FencingError``)."""
        await self._producer.fence([transactional_id(self._settings, owner) for owner in sorted(set(previous_owners))])

    async def account(self, result: BatchResult) -> None:
        """After settling (nothing in flight): a broker failure counts towards rebuilding the producer."""
        if result.broker_failed:
            await self._producer.failed()
        elif result.published:
            self._producer.succeeded()

    async def _mark(
        self, conn: asyncpg.Connection, done: Sequence[tuple[ClaimedRow, Delivered]], ownership: Ownership
    ) -> int:
        marked: int = await conn.fetchval(
            self._mark_sql,
            number_list(row.seq for row, _ in done),
            number_list(delivered.partition for _, delivered in done),
            number_list(delivered.offset for _, delivered in done),
            ownership.owner,
            list(ownership.shards),
            list(ownership.tokens),
        )
        self._metrics.published.inc(marked)
        if fenced := len(done) - marked:
            self._metrics.fenced.inc(fenced)
            log.warning("relay_mark_fenced", rows=fenced, reason="shard lease moved to another instance")
        return marked

    async def _record_failures(
        self, conn: asyncpg.Connection, errors: Sequence[tuple[ClaimedRow, BaseException]], ownership: Ownership
    ) -> None:
        self._metrics.failed.inc(len(errors))
        changed = await conn.fetch(
            self._fail_sql,
            [row.id for row, _ in errors],
            [repr(err)[:2000] for _, err in errors],
            [is_per_message(err) for _, err in errors],
            self._settings.max_attempts,
            ownership.owner,
            list(ownership.shards),
            list(ownership.tokens),
        )
        for record in changed:
            if record["status"] == "failed":
                self._metrics.parked.inc()
                log.error(
                    "outbox_row_parked",
                    outbox_id=str(record["id"]),
                    aggregate_id=record["aggregate_id"],
                    shard=record["shard"],
                    attempts=record["attempts"],
                    blocks="later rows of this aggregate until re-driven",
                )
        first_row, first_error = errors[0]
        log.warning(
            "outbox_publish_failed",
            rows=len(errors),
            first_outbox_id=str(first_row.id),
            first_aggregate_id=first_row.aggregate_id,
            first_error=repr(first_error),
            per_message=is_per_message(first_error),
        )

    async def close(self) -> None:
        await self._producer.close()

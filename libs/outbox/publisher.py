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

Failures: errors of the broker or the connection (outage, timeout, unknown topic)
leave rows pending, retried for ever. Only errors of the message itself (too large,
malformed headers) count towards ``max_attempts``, after which the row is parked as
``failed``; later rows of its aggregate then wait behind it until an admin re-drives
it, while every other aggregate keeps flowing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import asyncpg
import msgspec
from aiokafka.structs import RecordMetadata

from libs.kit.logging import get_logger
from libs.outbox.leases import Ownership
from libs.outbox.metrics import RelayMetrics
from libs.outbox.producing import (
    ClaimedRow,
    ManagedProducer,
    ProducerFactory,
    is_per_message,
    publish_in_key_order,
)
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


def _lease_cte(shards_table: str, owner: str, shards: str, tokens: str) -> str:
    """The leases still held under the given tokens, share-locked until the statement's commit.

    Locked in shard order, as renewal and release lock them: the worker's and the keeper's
    sessions of one instance never deadlock on the lease rows.
    """
    return (
        f"WITH lease AS (SELECT l.shard FROM {shards_table} l "  # noqa: S608
        f"JOIN unnest({shards}::smallint[], {tokens}::bigint[]) AS h(shard, token) "
        f"ON h.shard = l.shard AND h.token = l.token WHERE l.owner = {owner} ORDER BY l.shard FOR SHARE OF l) "
    )


class BatchPublisher:
    """Claims, produces and marks batches of one outbox table; owns the Kafka producer."""

    def __init__(self, producer_factory: ProducerFactory, settings: RelaySettings, metrics: RelayMetrics) -> None:
        self._producer = ManagedProducer(producer_factory, settings, metrics)
        self._settings = settings
        self._metrics = metrics
        table = f'"{settings.schema}".outbox'
        shards = f'"{settings.schema}".outbox_shards'
        self._claim_sql = (
            f"SELECT o.id, o.seq, o.shard, o.aggregate_id, o.payload::text AS payload, "  # noqa: S608
            f"o.headers::text AS headers, o.attempts FROM {table} o "
            f"WHERE o.status = 'pending' AND o.shard = ANY("
            f"SELECT l.shard FROM {shards} l JOIN unnest($1::smallint[], $2::bigint[]) AS h(shard, token) "
            f"ON h.shard = l.shard AND h.token = l.token WHERE l.owner = $3 AND l.expires_at > now()) "
            f"AND NOT EXISTS (SELECT 1 FROM {table} f WHERE f.status = 'failed' AND f.aggregate_id = o.aggregate_id) "
            f"ORDER BY o.seq LIMIT $4"
        )
        # last_error stays: a row that needed retries keeps the reason for history.
        mark_lease = _lease_cte(shards, "$4", "$5", "$6")
        self._mark_sql = (
            f"{mark_lease}, marked AS (UPDATE {table} o SET status = 'published', published_at = now(), "  # noqa: S608
            f"attempts = o.attempts + 1, published_partition = v.p, published_offset = v.off "
            f"FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS v(id, p, off), lease "
            f"WHERE o.id = v.id AND o.status = 'pending' AND o.shard = lease.shard RETURNING 1) "
            f"SELECT count(*) FROM marked"
        )
        fail_lease = _lease_cte(shards, "$5", "$6", "$7")
        self._fail_sql = (
            f"{fail_lease}UPDATE {table} o SET attempts = o.attempts + 1, last_error = v.err, "  # noqa: S608
            f"status = CASE WHEN v.permanent AND o.attempts + 1 >= $4 THEN 'failed' ELSE o.status END "
            f"FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS v(id, err, permanent), lease "
            f"WHERE o.id = v.id AND o.status = 'pending' AND o.shard = lease.shard "
            f"RETURNING o.id, o.aggregate_id, o.shard, o.status, o.attempts"
        )

    async def relay_batch(self, conn: asyncpg.Connection, ownership: Ownership) -> BatchResult:
        """Claim, publish and mark one batch of the owned shards."""
        if not ownership:
            return BatchResult()
        started = time.perf_counter()
        records = await conn.fetch(
            self._claim_sql, list(ownership.shards), list(ownership.tokens), ownership.owner, self._settings.batch_size
        )
        if not records:
            return BatchResult()
        rows = [ClaimedRow(**dict(r)) for r in records]
        try:
            producer = await self._producer.ready()
        except Exception as exc:  # noqa: BLE001 - any start failure is a broker problem: retry later
            log.warning("relay_producer_unavailable", error=repr(exc))
            await self._producer.failed()
            return BatchResult(claimed=len(rows), failed=len(rows))
        self._metrics.in_flight.set(len(rows))
        try:
            outcomes = await publish_in_key_order(producer, self._settings.topic, rows)
        finally:
            self._metrics.in_flight.set(0)

        done = [(row, o) for row, o in zip(rows, outcomes, strict=True) if isinstance(o, RecordMetadata)]
        errors = [(row, o) for row, o in zip(rows, outcomes, strict=True) if isinstance(o, BaseException)]
        fenced = 0
        if done:
            marked: int = await conn.fetchval(
                self._mark_sql,
                [row.id for row, _ in done],
                [meta.partition for _, meta in done],
                [meta.offset for _, meta in done],
                ownership.owner,
                list(ownership.shards),
                list(ownership.tokens),
            )
            self._metrics.published.inc(marked)
            fenced = len(done) - marked
            if fenced:
                self._metrics.fenced.inc(fenced)
                log.warning("relay_mark_fenced", rows=fenced, reason="shard lease moved to another instance")
        if errors:
            await self._record_failures(conn, errors, ownership)
        if any(not is_per_message(err) for _, err in errors):
            await self._producer.failed()
        elif done:
            self._producer.succeeded()
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return BatchResult(
            claimed=len(rows),
            published=len(done) - fenced,
            failed=len(errors),
            held_back=len(rows) - len(done) - len(errors),
            fenced=fenced,
        )

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

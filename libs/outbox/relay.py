"""The relay: claim pending outbox rows in commit order, publish, mark published.

One relay instance is active at a time per outbox (a PostgreSQL advisory lock on
its own connection); standby instances take over when the leader's session ends.
Rows of one aggregate are published in ``seq`` order, which is their commit order
because writers of one aggregate serialise on its row lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, ProducerClosed
from aiokafka.structs import RecordMetadata
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.kit.logging import get_logger
from libs.kit.telemetry import context_from_headers
from libs.outbox.table import notify_channel

log = get_logger(__name__)
tracer = trace.get_tracer("libs.outbox.relay")


class RelaySettings(msgspec.Struct, frozen=True):
    schema: str = "profile"
    topic: str = "customer-profile.v1"
    batch_size: int = 500
    poll_interval_s: float = 1.0
    # A row that fails this many publish attempts is parked as ``failed``; later rows
    # of its aggregate wait behind it.
    max_attempts: int = 10
    retry_delay_s: float = 0.5
    leader_retry_s: float = 1.0


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter("outbox_relay_published", "Outbox rows published to Kafka", registry=registry)
        self.failed = Counter("outbox_relay_failed_attempts", "Failed publish attempts", registry=registry)
        self.parked = Counter("outbox_relay_parked", "Rows parked as failed after max attempts", registry=registry)
        self.batch_seconds = Histogram(
            "outbox_relay_batch_seconds", "Claim-publish-mark duration of one batch", registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.is_leader = Gauge("outbox_relay_leader", "1 while this instance holds the relay lock", registry=registry)


class _Row(msgspec.Struct, frozen=True):
    id: Any
    seq: int
    aggregate_id: str
    payload: str
    headers: str
    attempts: int


class OutboxRelay:
    """Streams one outbox table to one topic until ``stop`` is set."""

    def __init__(
        self,
        dsn: str,
        producer: AIOKafkaProducer,
        settings: RelaySettings,
        metrics: RelayMetrics,
    ) -> None:
        self._dsn = dsn
        self._producer = producer
        self._settings = settings
        self._metrics = metrics
        self._wakeup = asyncio.Event()
        self._lock_key = zlib.crc32(f"outbox-relay:{settings.schema}".encode())
        table = f'"{settings.schema}".outbox'
        self._claim_sql = (
            f"SELECT id, seq, aggregate_id, payload::text AS payload, headers::text AS headers, attempts "  # noqa: S608
            f"FROM {table} o WHERE o.status = 'pending' AND NOT EXISTS ("
            f"SELECT 1 FROM {table} f WHERE f.status = 'failed' AND f.aggregate_id = o.aggregate_id) "
            f"ORDER BY seq LIMIT $1"
        )
        self._mark_sql = (
            f"UPDATE {table} o SET status = 'published', published_at = now(), "  # noqa: S608
            f"attempts = o.attempts + 1, published_partition = v.p, published_offset = v.off "
            f"FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS v(id, p, off) WHERE o.id = v.id"
        )
        self._fail_sql = (
            f"UPDATE {table} SET attempts = attempts + 1, last_error = $2, "  # noqa: S608
            f"status = CASE WHEN $4 AND attempts + 1 >= $3 THEN 'failed' ELSE status END "
            f"WHERE id = $1 RETURNING status"
        )

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold leadership and relay; reconnect after database failures."""
        while not stop.is_set():
            try:
                await self._run_connected(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._metrics.is_leader.set(0)
                log.warning("relay_db_connection_lost", error=str(exc))
                await _wait(stop, self._settings.leader_retry_s)

    async def _run_connected(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        try:
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                    break
                await _wait(stop, self._settings.leader_retry_s)
            if stop.is_set():
                return
            self._metrics.is_leader.set(1)
            log.info("relay_leader_acquired", schema=self._settings.schema)
            await conn.add_listener(notify_channel(self._settings.schema), self._on_notify)
            await self._relay_loop(conn, stop)
        finally:
            self._metrics.is_leader.set(0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def _relay_loop(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wakeup.clear()
            published = await self.relay_batch(conn)
            if published >= self._settings.batch_size:
                continue  # a backlog: go on at once
            if published < 0:
                await _wait(stop, self._settings.retry_delay_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._settings.poll_interval_s)
            if conn.is_closed():
                raise asyncpg.InterfaceError("relay connection closed")

    async def relay_batch(self, conn: asyncpg.Connection) -> int:
        """Publish one batch; returns rows published, or -1 if the batch hit an error."""
        started = time.perf_counter()
        records = await conn.fetch(self._claim_sql, self._settings.batch_size)
        if not records:
            return 0
        rows = [_Row(**dict(r)) for r in records]
        results = await self._publish(rows)
        done = [(row, meta) for row, meta in zip(rows, results, strict=True) if isinstance(meta, RecordMetadata)]
        if done:
            await conn.execute(
                self._mark_sql,
                [row.id for row, _ in done],
                [meta.partition for _, meta in done],
                [meta.offset for _, meta in done],
            )
            self._metrics.published.inc(len(done))
        errors = [(row, err) for row, err in zip(rows, results, strict=True) if isinstance(err, BaseException)]
        for row, err in errors:
            await self._record_failure(conn, row, err)
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return -1 if errors else len(done)

    async def _publish(self, rows: Sequence[_Row]) -> list[RecordMetadata | BaseException | None]:
        """Send every row; a key whose send failed sends nothing after it in this batch."""
        futures: list[asyncio.Future[RecordMetadata] | BaseException | None] = []
        failed_keys: set[str] = set()
        for row in rows:
            if row.aggregate_id in failed_keys:
                futures.append(None)  # held back behind the failed row of its key
                continue
            headers: dict[str, str] = msgspec.json.decode(row.headers)
            with tracer.start_as_current_span(
                f"{self._settings.topic} publish",
                context=context_from_headers(headers),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "publish",
                    "messaging.destination.name": self._settings.topic,
                    "messaging.message.id": str(row.id),
                    "messaging.kafka.message.key": row.aggregate_id,
                },
            ):
                try:
                    futures.append(
                        await self._producer.send(
                            self._settings.topic,
                            value=row.payload.encode(),
                            key=row.aggregate_id.encode(),
                            headers=[(k, v.encode()) for k, v in headers.items()],
                        )
                    )
                except (KafkaError, ValueError, TypeError) as exc:
                    failed_keys.add(row.aggregate_id)
                    futures.append(exc)
        results: list[RecordMetadata | BaseException | None] = []
        for future in futures:
            if future is None or isinstance(future, BaseException):
                results.append(future)
                continue
            try:
                results.append(await future)
            except KafkaError as exc:
                results.append(exc)
        return results

    async def _record_failure(self, conn: asyncpg.Connection, row: _Row, error: BaseException) -> None:
        self._metrics.failed.inc()
        # A broker outage is nobody's fault: only errors of the message itself count
        # towards parking it.
        permanent = not _is_transient(error)
        status = await conn.fetchval(
            self._fail_sql, row.id, repr(error)[:2000], self._settings.max_attempts, permanent
        )
        if status == "failed":
            self._metrics.parked.inc()
            log.error("outbox_row_parked", outbox_id=str(row.id), aggregate_id=row.aggregate_id, error=repr(error))
        else:
            log.warning("outbox_publish_failed", outbox_id=str(row.id), aggregate_id=row.aggregate_id,
                        attempt=row.attempts + 1, error=repr(error))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _is_transient(error: BaseException) -> bool:
    return bool(getattr(error, "retriable", False)) or isinstance(error, KafkaTimeoutError | ProducerClosed)

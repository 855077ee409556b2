"""The relay: claim pending outbox rows in commit order, publish, mark published.

One relay instance is active at a time per outbox (a PostgreSQL advisory lock on
its own connection); standby instances take over when the leader's session ends.
Claims and marks run on the connection that holds the lock, so an instance that
lost its session can no longer mark anything.

Rows of one aggregate are published in ``seq`` order, which is their commit order
because writers of one aggregate serialise on its row lock. A row is marked
``published`` only when every earlier row of its aggregate in the batch was
published too; otherwise it stays pending and is sent again after them (a
duplicate, never a gap or a reordering of the outbox).

Failures: errors of the broker or the connection (outage, timeout, unknown topic)
leave rows pending, retried for ever. Only errors of the message itself (too large,
malformed headers) count towards ``max_attempts``, after which the row is parked as
``failed``; later rows of its aggregate then wait behind it until an admin re-drives
it, while every other aggregate keeps flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import asyncpg
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
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.kit.logging import get_logger
from libs.kit.telemetry import context_from_headers
from libs.outbox.table import notify_channel

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

# The server drops a dead relay's session (and so its leadership) within about a minute.
_SESSION_SETTINGS = {"tcp_keepalives_idle": "20", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "4"}


class RelaySettings(msgspec.Struct, frozen=True):
    schema: str = "profile"
    topic: str = "customer-profile.v1"
    batch_size: int = 500
    poll_interval_s: float = 1.0
    # A row whose message fails this many attempts with a per-message error is parked
    # as ``failed``; later rows of its aggregate wait behind it.
    max_attempts: int = 10
    retry_delay_s: float = 0.5
    leader_retry_s: float = 1.0
    # After this many consecutive batches failing with broker errors the producer is
    # closed and built afresh (new connections, new metadata).
    producer_reset_after: int = 3
    # On stop, a batch in flight gets this long to finish; then it is cancelled and its
    # rows stay pending (the next leader sends them again).
    shutdown_grace_s: float = 5.0


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter("outbox_relay_published", "Outbox rows published to Kafka", registry=registry)
        self.failed = Counter("outbox_relay_failed_attempts", "Failed publish attempts", registry=registry)
        self.parked = Counter("outbox_relay_parked", "Rows parked as failed after max attempts", registry=registry)
        self.producer_resets = Counter(
            "outbox_relay_producer_resets", "Producers rebuilt after persistent broker errors", registry=registry
        )
        self.batch_seconds = Histogram(
            "outbox_relay_batch_seconds",
            "Claim-publish-mark duration of one batch",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.in_flight = Gauge(
            "outbox_relay_in_flight_rows", "Rows of the current batch sent and not yet acknowledged", registry=registry
        )
        self.is_leader = Gauge("outbox_relay_leader", "1 while this instance holds the relay lock", registry=registry)


class BatchResult(msgspec.Struct, frozen=True):
    claimed: int = 0
    published: int = 0
    # Rows not published because of an error (their own or the broker's).
    failed: int = 0
    # Rows not marked because an earlier row of their aggregate was not published.
    held_back: int = 0


class _Row(msgspec.Struct, frozen=True):
    id: Any
    seq: int
    aggregate_id: str
    payload: str
    headers: str
    attempts: int


class MalformedRowError(ValueError):
    """The stored row cannot be turned into a Kafka message."""


_Outcome: TypeAlias = RecordMetadata | BaseException | None  # None: not sent / held back


class OutboxRelay:
    """Streams one outbox table to one topic until ``stop`` is set."""

    def __init__(
        self,
        dsn: str,
        producer_factory: ProducerFactory,
        settings: RelaySettings,
        metrics: RelayMetrics,
    ) -> None:
        self._dsn = dsn
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._broker_failures = 0
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
            f"attempts = o.attempts + 1, last_error = NULL, published_partition = v.p, published_offset = v.off "
            f"FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS v(id, p, off) "
            f"WHERE o.id = v.id AND o.status = 'pending'"
        )
        self._fail_sql = (
            f"UPDATE {table} o SET attempts = o.attempts + 1, last_error = v.err, "  # noqa: S608
            f"status = CASE WHEN v.permanent AND o.attempts + 1 >= $4 THEN 'failed' ELSE o.status END "
            f"FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS v(id, err, permanent) "
            f"WHERE o.id = v.id AND o.status = 'pending' "
            f"RETURNING o.id, o.aggregate_id, o.status, o.attempts"
        )

    @property
    def lock_key(self) -> int:
        """The advisory lock key the leader holds (``pg_locks.objid`` on the server)."""
        return self._lock_key

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold leadership and relay until ``stop``; survive database and broker failures."""
        worker = asyncio.create_task(self._serve(stop), name=f"outbox-relay-{self._settings.schema}")
        try:
            await _first_of(worker, stop)
            self._wakeup.set()
            if not worker.done():
                await asyncio.wait({worker}, timeout=self._settings.shutdown_grace_s)
            if not worker.done():
                log.warning("relay_batch_cancelled_on_stop", grace_s=self._settings.shutdown_grace_s)
        finally:
            if not worker.done():
                worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await self._close_producer()

    async def _serve(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._lead(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("relay_db_connection_lost", error=repr(exc))
            except Exception:  # the relay must outlive any one failure
                log.exception("relay_unexpected_error")
            await _wait(stop, self._settings.leader_retry_s)

    async def _lead(self, stop: asyncio.Event) -> None:
        """One database session: wait for the lock, then relay while the session lives."""
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn,
            server_settings={**_SESSION_SETTINGS, "application_name": f"outbox-relay:{self._settings.schema}"},
        )
        conn.add_termination_listener(self._on_notify)
        leading = False
        try:
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                    break
                await _wait(stop, self._settings.leader_retry_s)
            if stop.is_set():
                return
            leading = True
            self._metrics.is_leader.set(1)
            log.info("relay_leader_acquired", schema=self._settings.schema)
            await conn.add_listener(notify_channel(self._settings.schema), self._on_notify)
            await self._relay_loop(conn, stop)
        finally:
            if leading:
                log.info("relay_leader_released", schema=self._settings.schema)
            self._metrics.is_leader.set(0)
            await _close_connection(conn)

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def _relay_loop(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wakeup.clear()
            result = await self.relay_batch(conn)
            if result.failed:
                await _wait(stop, self._settings.retry_delay_s)
            elif result.claimed < self._settings.batch_size:
                # Caught up: sleep until a NOTIFY, the poll interval, stop or a lost session.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._settings.poll_interval_s)
            if conn.is_closed():
                msg = "relay connection closed"
                raise asyncpg.InterfaceError(msg)

    async def relay_batch(self, conn: asyncpg.Connection) -> BatchResult:
        """Claim, publish and mark one batch on the leader's connection."""
        started = time.perf_counter()
        records = await conn.fetch(self._claim_sql, self._settings.batch_size)
        if not records:
            return BatchResult()
        rows = [_Row(**dict(r)) for r in records]
        try:
            producer = await self._producer_ready()
        except Exception as exc:  # noqa: BLE001 - any start failure is a broker problem: retry later
            log.warning("relay_producer_unavailable", error=repr(exc))
            await self._on_broker_failure()
            return BatchResult(claimed=len(rows), failed=len(rows))
        self._metrics.in_flight.set(len(rows))
        try:
            outcomes = await self._publish(producer, rows)
        finally:
            self._metrics.in_flight.set(0)

        done = [(row, o) for row, o in zip(rows, outcomes, strict=True) if isinstance(o, RecordMetadata)]
        errors = [(row, o) for row, o in zip(rows, outcomes, strict=True) if isinstance(o, BaseException)]
        if done:
            await conn.execute(
                self._mark_sql,
                [row.id for row, _ in done],
                [meta.partition for _, meta in done],
                [meta.offset for _, meta in done],
            )
            self._metrics.published.inc(len(done))
        if errors:
            await self._record_failures(conn, errors)
        if any(not _is_per_message(err) for _, err in errors):
            await self._on_broker_failure()
        elif done:
            self._broker_failures = 0
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return BatchResult(
            claimed=len(rows), published=len(done), failed=len(errors), held_back=len(rows) - len(done) - len(errors)
        )

    async def _publish(self, producer: AIOKafkaProducer, rows: Sequence[_Row]) -> list[_Outcome]:
        """Send the batch; a key stops at its first failure, and a broker error stops the batch."""
        sent: list[asyncio.Future[RecordMetadata] | BaseException | None] = []
        blocked: set[str] = set()
        broker_down = False
        for row in rows:
            if broker_down or row.aggregate_id in blocked:
                sent.append(None)
                continue
            try:
                sent.append(await self._send(producer, row))
            except Exception as exc:  # noqa: BLE001 - classified below, recorded on the row
                blocked.add(row.aggregate_id)
                sent.append(exc)
                # Metadata or buffer trouble: the rest would only wait for the same timeout.
                broker_down = not _is_per_message(exc)

        outcomes: list[_Outcome] = []
        blocked = set()
        for row, item in zip(rows, sent, strict=True):
            outcome: _Outcome
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

    async def _send(self, producer: AIOKafkaProducer, row: _Row) -> asyncio.Future[RecordMetadata]:
        headers = _decode_headers(row)
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
            future: asyncio.Future[RecordMetadata] = await producer.send(
                self._settings.topic,
                value=row.payload.encode(),
                key=row.aggregate_id.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()],
            )
            return future

    async def _record_failures(self, conn: asyncpg.Connection, errors: Sequence[tuple[_Row, BaseException]]) -> None:
        self._metrics.failed.inc(len(errors))
        changed = await conn.fetch(
            self._fail_sql,
            [row.id for row, _ in errors],
            [repr(err)[:2000] for _, err in errors],
            [_is_per_message(err) for _, err in errors],
            self._settings.max_attempts,
        )
        for record in changed:
            if record["status"] == "failed":
                self._metrics.parked.inc()
                log.error(
                    "outbox_row_parked",
                    outbox_id=str(record["id"]),
                    aggregate_id=record["aggregate_id"],
                    attempts=record["attempts"],
                )
        first_row, first_error = errors[0]
        log.warning(
            "outbox_publish_failed",
            rows=len(errors),
            first_outbox_id=str(first_row.id),
            first_error=repr(first_error),
            per_message=_is_per_message(first_error),
        )

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), timeout=self._settings.shutdown_grace_s)
                raise
            self._producer = producer
        return self._producer

    async def _on_broker_failure(self) -> None:
        self._broker_failures += 1
        if self._broker_failures >= self._settings.producer_reset_after and self._producer is not None:
            log.warning("relay_producer_reset", consecutive_failed_batches=self._broker_failures)
            self._metrics.producer_resets.inc()
            self._broker_failures = 0
            await self._close_producer()

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=self._settings.shutdown_grace_s)


def _decode_headers(row: _Row) -> dict[str, str]:
    try:
        return msgspec.json.decode(row.headers, type=dict[str, str])
    except msgspec.DecodeError as exc:  # ValidationError included
        msg = f"outbox row {row.id}: headers are not a JSON object of strings: {exc}"
        raise MalformedRowError(msg) from exc


def _is_per_message(error: BaseException) -> bool:
    return isinstance(error, _PER_MESSAGE_ERRORS)


async def _first_of(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _close_connection(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=2)
    except Exception:  # noqa: BLE001 - a dead session: drop it
        conn.terminate()

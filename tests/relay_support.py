"""Helpers for the outbox relay tests: rows through the real writer, a real relay, a real consumer."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, CustomerNameChanged
from libs.devstack.embedded import EmbeddedKafka
from libs.kit.db import DatabaseSettings, make_engine
from libs.kit.kafka import KafkaSettings, make_producer
from libs.kit.kafka_probe import check_topic_writable
from libs.outbox.relay import OutboxRelay, RelayMetrics, RelaySettings
from libs.outbox.table import SHARD_COUNT, outbox_table
from libs.outbox.writer import OutboxMessage, OutboxWriter
from tests.polling import eventually

SCHEMA = "profile"


def relay_settings(topic: str, **overrides: object) -> RelaySettings:
    """Test timings: small batches, short leases (a killed instance's shards move within ~2 s)."""
    values: dict[str, object] = {
        "schema": SCHEMA,
        "topic": topic,
        "batch_size": 25,
        "poll_interval_s": 0.5,
        "retry_delay_s": 0.1,
        "reconnect_delay_s": 0.2,
        "lease_ttl_s": 2.0,
        "lease_renew_interval_s": 0.25,
        "broker_probe_interval_s": 0.5,
    }
    values.update(overrides)
    return msgspec.convert(values, RelaySettings)


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> float:
    """``tests.polling.eventually`` for a condition (sync or async); returns the seconds it took."""

    async def holds() -> bool:
        result = condition()
        return result if isinstance(result, bool) else await result

    started = time.monotonic()
    await eventually(holds, message, timeout, interval=interval)
    return time.monotonic() - started


def outbox() -> Table:
    return outbox_table(MetaData(), SCHEMA)


def name_changed(
    customer_id: str,
    version: int,
    *,
    traceparent: str | None = None,
    reason: str = "marriage",
) -> OutboxMessage:
    """An outbox message as the profile service writes it: CustomerNameChanged + CloudEvents headers."""
    event_id = uuid.uuid4()
    changed_at = datetime.now(UTC)
    event = CustomerNameChanged(
        customer_id=customer_id,
        application_id=f"APP-{customer_id}-{version}",
        old_name=f"Name {version - 1}",
        new_name=f"Name {version}",
        profile_version=version,
        reason=reason,
        changed_at=changed_at,
    )
    trace_context = {"traceparent": traceparent} if traceparent else {}
    headers = kafka_headers(
        CloudEventAttributes(
            id=str(event_id), source=EVENT_SOURCE, type=NAME_CHANGED_TYPE, time=changed_at, subject=customer_id
        ),
        trace_context,
    )
    return OutboxMessage(
        id=event_id,
        aggregate_type="customer",
        aggregate_id=customer_id,
        event_type=NAME_CHANGED_TYPE,
        payload=msgspec.to_builtins(event),
        headers=headers,
        created_at=changed_at,
    )


def random_traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


@contextlib.contextmanager
def own_broker(log_file: Path, **settings: Any) -> Iterator[tuple[EmbeddedKafka, KafkaSettings]]:
    """A broker of the test's own, for a test that takes it down (the shared one must not go down under
    other tests), and the settings that reach it (``settings`` besides); stopped at the end."""
    with EmbeddedKafka(log_file=log_file) as broker:
        yield broker, KafkaSettings(bootstrap_servers=broker.bootstrap, **settings)


@contextlib.asynccontextmanager
async def engine_for(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(DatabaseSettings(url=database_url, pool_size=2, max_overflow=2))
    try:
        yield engine
    finally:
        await engine.dispose()


async def write(engine: AsyncEngine, messages: Iterable[OutboxMessage]) -> None:
    """Add the messages through the writer in one committed transaction."""
    table = outbox()
    async with engine.begin() as connection:
        writer = OutboxWriter(connection, table)
        for message in messages:
            await writer.add(message)


async def outbox_rows(database_url: str) -> dict[uuid.UUID, asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch(
            "SELECT id, seq, aggregate_id, status, attempts, last_error, published_partition, published_offset "
            "FROM profile.outbox ORDER BY seq"
        )
    finally:
        await conn.close()
    return {r["id"]: r for r in records}


async def status_counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch("SELECT status, count(*) AS n FROM profile.outbox GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in records}


@dataclass
class Received:
    """A consumed message, headers decoded."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str]
    raw_headers: dict[str, bytes]

    @property
    def event_id(self) -> str:
        return self.headers["ce_id"]


@dataclass
class Collector:
    """Consumes a topic from the beginning in the background (no consumer group: no join delay)."""

    messages: list[Received] = field(default_factory=list)

    def ids(self) -> set[str]:
        return {m.event_id for m in self.messages}

    def by_id(self) -> dict[str, Received]:
        return {m.event_id: m for m in self.messages}


@contextlib.asynccontextmanager
async def collecting(kafka: KafkaSettings, topic: str) -> AsyncIterator[Collector]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # The relay publishes in transactions: what an aborted one wrote was never published.
        isolation_level="read_committed",
    )
    await consumer.start()
    collector = Collector()

    async def pump() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                collector.messages.extend(
                    Received(
                        topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        key=r.key.decode(),
                        value=r.value,
                        headers={k: v.decode() for k, v in r.headers},
                        raw_headers=dict(r.headers),
                    )
                    for r in records
                )

    task = asyncio.create_task(pump())
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@dataclass
class RunningRelay:
    relay: OutboxRelay
    registry: CollectorRegistry
    stop: asyncio.Event
    task: asyncio.Task[None]

    def metric(self, name: str) -> float:
        return self.registry.get_sample_value(name) or 0.0

    @property
    def shards_owned(self) -> int:
        return int(self.metric("outbox_relay_shards_owned"))

    @property
    def owns_all_shards(self) -> bool:
        return self.shards_owned == SHARD_COUNT

    @property
    def instance_id(self) -> str:
        return self.relay.instance_id

    @property
    def ready(self) -> bool:
        """False while the relay has given its shards up for want of the broker."""
        return self.relay.readiness.ready

    async def shutdown(self, timeout: float = 15.0) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.shield(self.task), timeout)


@contextlib.asynccontextmanager
async def running_relay(
    database_url: str, kafka: KafkaSettings, settings: RelaySettings
) -> AsyncIterator[RunningRelay]:
    """An in-process relay, stopped (and checked to stop) on exit."""
    registry = CollectorRegistry()
    relay = OutboxRelay(
        database_url,
        lambda transactional_id: make_producer(kafka, transactional_id),
        settings,
        RelayMetrics(registry),
        broker_probe=lambda: check_topic_writable(kafka, settings.topic),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    running = RunningRelay(relay, registry, stop, task)
    try:
        yield running
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 20)
        finally:
            if not task.done():
                task.cancel()


@contextlib.asynccontextmanager
async def running_relays(
    database_url: str, kafka: KafkaSettings, settings: RelaySettings, count: int
) -> AsyncIterator[tuple[RunningRelay, ...]]:
    """``count`` instances of ``running_relay`` side by side, started in order and stopped in reverse."""
    async with contextlib.AsyncExitStack() as stack:
        yield tuple(
            [await stack.enter_async_context(running_relay(database_url, kafka, settings)) for _ in range(count)]
        )


async def shard_owners(database_url: str) -> dict[int, str | None]:
    """Each shard's lease owner, as the database says (None: free); expired leases count as free."""
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch(
            "SELECT shard, CASE WHEN expires_at > now() THEN owner END AS owner FROM profile.outbox_shards"
        )
    finally:
        await conn.close()
    return {r["shard"]: r["owner"] for r in records}


def first_occurrence_versions(messages: Iterable[Received]) -> dict[str, list[int]]:
    """Per key, the profile versions in the order their events first appear (duplicates skipped)."""
    seen: set[str] = set()
    versions: dict[str, list[int]] = {}
    for record in sorted(messages, key=lambda r: (r.partition, r.offset)):
        if record.event_id in seen:
            continue
        seen.add(record.event_id)
        version: int = msgspec.json.decode(record.value)["profileVersion"]
        versions.setdefault(record.key, []).append(version)
    return versions

"""Fencing: an instance whose shard was taken over while its batch was in flight can mark nothing,
and once the new owner has fenced its producer at the broker, nothing it sends becomes visible."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from libs.kit.kafka import KafkaSettings
from libs.outbox.leases import ShardLeases
from libs.outbox.metrics import RelayMetrics
from libs.outbox.producing import ProducerFactory
from libs.outbox.publisher import BatchPublisher, BatchResult
from libs.outbox.settings import RelaySettings
from libs.outbox.table import SHARD_COUNT
from libs.outbox.writer import OutboxMessage
from tests.relay_support import (
    Collector,
    collecting,
    engine_for,
    name_changed,
    outbox_rows,
    relay_settings,
    wait_until,
    write,
)


class GatedProducer(AIOKafkaProducer):  # type: ignore[misc]
    """A real producer whose sends wait for a gate: the test decides when the batch goes on."""

    def __init__(self, gate: asyncio.Event, sending: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = gate
        self._sending = sending

    async def send_batch(self, *args: Any, **kwargs: Any) -> Any:
        self._sending.set()
        await self._gate.wait()
        return await super().send_batch(*args, **kwargs)


def producer_factories(
    kafka: KafkaSettings, gate: asyncio.Event, sending: asyncio.Event
) -> tuple[ProducerFactory, ProducerFactory]:
    """The old owner's producers wait at the gate; the new owner's are plain (both transactional)."""

    def gated(transactional_id: str) -> AIOKafkaProducer:
        return GatedProducer(
            gate, sending, bootstrap_servers=kafka.bootstrap_servers, transactional_id=transactional_id
        )

    def plain(transactional_id: str) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=transactional_id)

    return gated, plain


@dataclass
class Owner:
    """One relay instance's side of a takeover: its leases, its publisher and its own connection."""

    registry: CollectorRegistry
    leases: ShardLeases
    publisher: BatchPublisher
    conn: asyncpg.Connection


@dataclass
class Takeover:
    """Both owners once the new one holds every shard while the old one's batch waits at the gate."""

    old: Owner
    new: Owner
    gate: asyncio.Event
    in_flight: asyncio.Task[BatchResult]
    seen: Collector


@contextlib.asynccontextmanager
async def taken_over_mid_batch(
    database_url: str,
    kafka: KafkaSettings,
    topic: str,
    settings: RelaySettings,
    messages: list[OutboxMessage],
    names: tuple[str, str],
) -> AsyncIterator[Takeover]:
    """The messages written; the old owner claims every shard's rows and begins sending them (its
    transaction begun, the sends held at the gate); meanwhile its leases run out and the new owner
    takes every shard. Publishers, connections and the topic's reader are closed on exit."""
    async with engine_for(database_url) as engine:
        await write(engine, messages)
    gate, sending = asyncio.Event(), asyncio.Event()
    made: list[Owner] = []
    try:
        for name, factory in zip(names, producer_factories(kafka, gate, sending), strict=True):
            registry = CollectorRegistry()
            metrics = RelayMetrics(registry)
            publisher = BatchPublisher(factory, settings, metrics, name)
            made.append(
                Owner(registry, ShardLeases(settings, metrics, name), publisher, await asyncpg.connect(database_url))
            )
        old, new = made
        async with collecting(kafka, topic) as seen:
            await old.leases.heartbeat(old.conn)
            assert len(await old.leases.acquire(old.conn, SHARD_COUNT)) == SHARD_COUNT
            in_flight = asyncio.create_task(old.publisher.relay_batch(old.conn, old.leases.claimable()))
            await asyncio.wait_for(sending.wait(), timeout=10)  # claimed, about to send

            await new.conn.execute("UPDATE profile.outbox_shards SET expires_at = now() - interval '1 second'")
            await new.leases.heartbeat(new.conn)
            assert len(await new.leases.acquire(new.conn, SHARD_COUNT)) == SHARD_COUNT
            yield Takeover(old, new, gate, in_flight, seen)
    finally:
        for owner in made:
            await owner.publisher.close()
            await owner.conn.close()


async def test_a_batch_whose_shards_moved_meanwhile_is_not_marked_and_the_new_owner_sends_it(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    settings = relay_settings(topic, lease_ttl_s=2.0)
    messages = [name_changed(f"F{n}", 1) for n in range(10)]
    async with taken_over_mid_batch(
        database_url, kafka_settings, topic, settings, messages, ("old-owner", "new-owner")
    ) as takeover:
        old, new, gate, in_flight, seen = takeover.old, takeover.new, takeover.gate, takeover.in_flight, takeover.seen
        old_registry, old_leases, old_conn = old.registry, old.leases, old.conn
        new_leases, new_publisher, new_conn = new.leases, new.publisher, new.conn
        gate.set()
        stale = await asyncio.wait_for(in_flight, timeout=20)

        assert (stale.claimed, stale.published, stale.fenced) == (10, 0, 10)
        assert old_registry.get_sample_value("outbox_relay_fenced_rows_total") == 10
        rows = await outbox_rows(database_url)
        assert {rows[m.id]["status"] for m in messages} == {"pending"}, "a stale owner marked rows"
        await wait_until(lambda: len(seen.ids()) == 10, timeout=10, message="the stale sends did not land")

        fresh = await new_publisher.relay_batch(new_conn, new_leases.claimable())
        assert (fresh.claimed, fresh.published, fresh.fenced) == (10, 10, 0)
        await wait_until(lambda: len(seen.messages) == 20, timeout=10, message="the new owner did not send")
        # The stale instance renews: it learns it lost every lease.
        await old_leases.renew(old_conn)
        assert old_leases.held == {}
        assert old_registry.get_sample_value("outbox_relay_leases_lost_total") == SHARD_COUNT
    rows = await outbox_rows(database_url)
    assert {rows[m.id]["status"] for m in messages} == {"published"}
    assert all(rows[m.id]["attempts"] == 1 for m in messages)


async def test_a_stale_owner_fenced_at_the_broker_publishes_nothing_a_read_committed_consumer_sees(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    """The relay paused past its lease with a batch not yet sent: the new owner fences its producer
    before claiming, so when the old one wakes up and sends, the broker refuses it."""
    settings = relay_settings(topic, lease_ttl_s=2.0, transaction_timeout_s=5.0)
    first = [name_changed(f"G{n}", 1) for n in range(10)]
    newer = [name_changed(f"G{n}", 2) for n in range(10)]
    async with taken_over_mid_batch(
        database_url, kafka_settings, topic, settings, first, ("paused-owner", "next-owner")
    ) as takeover:
        old, new, gate, in_flight, seen = takeover.old, takeover.new, takeover.gate, takeover.in_flight, takeover.seen
        old_registry, new_registry = old.registry, new.registry
        new_leases, new_publisher, new_conn = new.leases, new.publisher, new.conn
        assert set(new_leases.taken_over.values()) == {"paused-owner"}
        await new_publisher.fence(new_leases.taken_over.values())
        assert new_registry.get_sample_value("outbox_relay_fenced_producers_total") == 1
        async with engine_for(database_url) as engine:
            await write(engine, newer)
        fresh = await new_publisher.relay_batch(new_conn, new_leases.claimable())
        assert (fresh.claimed, fresh.published) == (20, 20)

        gate.set()  # the old owner wakes up and sends what it had claimed
        stale = await asyncio.wait_for(in_flight, timeout=20)
        assert stale.published == 0
        await wait_until(lambda: len(seen.messages) == 20, timeout=10, message="the new owner's rows")
        # Give a stale write every chance to show: a marker written after it must be read first.
        marker = name_changed("G-marker", 1)
        async with engine_for(database_url) as engine:
            await write(engine, [marker])
        await new_publisher.relay_batch(new_conn, new_leases.claimable())
        await wait_until(lambda: str(marker.id) in seen.ids(), timeout=10, message="the marker")
        for n in range(10):
            versions = [_version(m.value) for m in seen.messages if m.key == f"G{n}"]
            assert versions == [1, 2], (f"G{n}", versions)
        assert old_registry.get_sample_value("outbox_relay_aborted_transactions_total") == 1


def _version(value: bytes) -> int:
    version: int = json.loads(value)["profileVersion"]
    return version

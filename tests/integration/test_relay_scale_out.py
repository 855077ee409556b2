"""Several relay instances share the shards and keep every customer's order.

In-process instances, each with its own producer and database sessions, on real
PostgreSQL and a real Kafka-protocol broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.kafka import KafkaSettings
from libs.outbox.table import SHARD_COUNT, shard_of
from libs.outbox.writer import OutboxMessage
from tests.relay_support import (
    RunningRelay,
    collecting,
    engine_for,
    first_occurrence_versions,
    name_changed,
    relay_settings,
    running_relay,
    running_relays,
    shard_owners,
    status_counts,
    wait_until,
    write,
)

CUSTOMERS = 1_000
CHANGES = 5


async def test_three_instances_publish_5000_changes_in_per_customer_order(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    customers = [f"CUST{n:05d}" for n in range(CUSTOMERS)]
    settings = relay_settings(topic, batch_size=200, poll_interval_s=0.2)
    async with (
        engine_for(database_url) as engine,
        collecting(kafka_settings, topic) as seen,
        running_relays(database_url, kafka_settings, settings, 3) as relays,
    ):
        await wait_until(
            lambda: _balanced(relays), timeout=15, message=lambda: f"shares: {[r.shards_owned for r in relays]}"
        )
        messages = []
        # Version by version, in transactions of 250 rows, while the relays run.
        for version in range(1, CHANGES + 1):
            batch = [name_changed(customer, version) for customer in customers]
            messages.extend(batch)
            for start in range(0, len(batch), 250):
                await write(engine, batch[start : start + 250])

        async def all_published() -> bool:
            return await status_counts(database_url) == {"published": CUSTOMERS * CHANGES}

        await wait_until(all_published, timeout=60, message="not every row was published")
        expected = {str(m.id) for m in messages}
        await wait_until(
            lambda: expected <= seen.ids(),
            timeout=20,
            message=lambda: f"{len(expected - seen.ids())} events missing in Kafka",
        )
        published_by = [r.metric("outbox_relay_published_total") for r in relays]

    assert sum(published_by) == CUSTOMERS * CHANGES, published_by
    assert all(n > 0 for n in published_by), f"the work was not shared: {published_by}"
    versions = first_occurrence_versions(seen.messages)
    assert set(versions) == set(customers)
    bad = {key: v for key, v in versions.items() if v != list(range(1, CHANGES + 1))}
    assert not bad, f"{len(bad)} customers out of order, e.g. {next(iter(bad.items()))}"


@dataclass
class SteadyLoad:
    """Name changes of 200 customers, 50 per transaction every 50 ms, until stopped."""

    engine: AsyncEngine
    versions: Counter[str] = field(default_factory=Counter)
    messages: list[OutboxMessage] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        customers = [f"R{n:03d}" for n in range(200)]
        turn = 0
        while not self.stop.is_set():
            batch = []
            for customer in customers[turn % 4 :: 4]:
                self.versions[customer] += 1
                batch.append(name_changed(customer, self.versions[customer]))
            self.messages.extend(batch)
            await write(self.engine, batch)
            turn += 1
            await asyncio.sleep(0.05)  # pacing of the load, not a wait for a result


@dataclass
class OwnershipWatch:
    """Samples the lease table: every owner of a live lease must be a running instance."""

    database_url: str
    running: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            for shard, owner in (await shard_owners(self.database_url)).items():
                if owner is not None and owner not in self.running:
                    self.violations.append(f"shard {shard} owned by {owner}, not running")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def background(*jobs: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(job()) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_instances_joining_and_leaving_rebalance_without_gaps_or_overlap(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    # A long lease: a clean stop must hand shards over at once, not after expiry.
    settings = relay_settings(topic, batch_size=50, poll_interval_s=0.2, lease_ttl_s=8.0, lease_renew_interval_s=0.25)
    watch = OwnershipWatch(database_url)
    async with (
        engine_for(database_url) as engine,
        collecting(kafka_settings, topic) as seen,
        running_relay(database_url, kafka_settings, settings) as a,
    ):
        load = SteadyLoad(engine)
        watch.running.add(a.instance_id)
        async with background(watch.run, load.run):
            await wait_until(lambda: a.owns_all_shards, timeout=10, message="the first instance did not take all")
            async with running_relays(database_url, kafka_settings, settings, 2) as (b, c):
                watch.running.update({b.instance_id, c.instance_id})
                await wait_until(lambda: _balanced((a, b, c)), timeout=10, message="no fair share of three")
                await _assert_owned_by(database_url, (a, b, c))
                await _wait_publishing((a, b, c))
                await b.shutdown()
                watch.running.discard(b.instance_id)
                took = await wait_until(
                    lambda: _balanced((a, c)),
                    timeout=settings.lease_ttl_s,  # released, not expired: well within the lease ttl
                    message=lambda: f"no clean hand-over: {a.shards_owned} + {c.shards_owned}",
                )
                await _assert_owned_by(database_url, (a, c))
                await _wait_publishing((a, c))
                assert b.metric("outbox_relay_leases_released_total") >= 1
                assert all(r.metric("outbox_relay_leases_lost_total") == 0 for r in (a, b, c))
                load.stop.set()

                async def drained() -> bool:
                    return set(await status_counts(database_url)) == {"published"}

                await wait_until(drained, timeout=20, message="rows left pending after the rebalances")
                expected = {str(m.id) for m in load.messages}
                await wait_until(lambda: expected <= seen.ids(), timeout=20, message="events missing in Kafka")

    print(f"hand-over after a clean stop took {took:.2f}s (lease ttl {settings.lease_ttl_s}s)")
    assert not watch.violations, watch.violations[:5]
    for customer, seen_versions in first_occurrence_versions(seen.messages).items():
        assert seen_versions == list(range(1, load.versions[customer] + 1)), customer


async def test_the_database_computes_the_same_shard_as_shard_of(database_url: str) -> None:
    keys = [f"K{n}" for n in range(200)] + ["中文客户", "ÄÖÜ-1", "a" * 64]
    async with engine_for(database_url) as engine:
        await write(engine, [name_changed(key, 1) for key in keys])
    conn = await asyncpg.connect(database_url)
    try:
        stored = {
            r["aggregate_id"]: r["shard"] for r in await conn.fetch("SELECT aggregate_id, shard FROM profile.outbox")
        }
        assert await conn.fetchval("SELECT count(*) FROM profile.outbox_shards") == SHARD_COUNT
    finally:
        await conn.close()
    assert stored == {key: shard_of(key) for key in keys}


def _balanced(relays: tuple[RunningRelay, ...]) -> bool:
    shares = [r.shards_owned for r in relays]
    share = -(-SHARD_COUNT // len(relays))
    return sum(shares) == SHARD_COUNT and all(0 < n <= share for n in shares)


async def _assert_owned_by(database_url: str, relays: tuple[RunningRelay, ...]) -> None:
    owners = await shard_owners(database_url)
    assert set(owners) == set(range(SHARD_COUNT))
    assert set(owners.values()) == {r.instance_id for r in relays}
    for relay in relays:
        assert {s for s, o in owners.items() if o == relay.instance_id} == relay.relay.held_shards


async def _wait_publishing(relays: tuple[RunningRelay, ...]) -> None:
    """Each instance publishes more rows of the running load in its current shards."""
    before = [r.metric("outbox_relay_published_total") for r in relays]
    await wait_until(
        lambda: all(r.metric("outbox_relay_published_total") > n for r, n in zip(relays, before, strict=True)),
        timeout=10,
        message="not every instance published its share of the load",
    )

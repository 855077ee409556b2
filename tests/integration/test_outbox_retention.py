"""Retention: published rows leave the outbox in bounded batches, so the table does not grow under load."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from prometheus_client import CollectorRegistry

from libs.kit.kafka import KafkaSettings
from libs.outbox.metrics import RelayMetrics
from libs.outbox.publisher import BatchPublisher
from libs.outbox.retention import Retention
from libs.outbox.table import SHARD_COUNT
from tests.relay_support import (
    collecting,
    engine_for,
    name_changed,
    relay_settings,
    running_relays,
    status_counts,
    wait_until,
    write,
)

ROUNDS = 5
ROUND_ROWS = 1_000


async def test_under_sustained_load_the_table_stays_bounded_and_only_published_rows_go(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    settings = relay_settings(
        topic,
        batch_size=250,
        poll_interval_s=0.2,
        retention_s=0.3,
        cleanup_interval_s=0.2,
        cleanup_batch_size=200,
        cleanup_max_batches=3,
    )
    parked, blocked = name_changed("PARKED", 1), name_changed("PARKED", 2)
    sizes: list[int] = []
    async with engine_for(database_url) as engine:
        await write(engine, [parked, blocked])
    conn = await asyncpg.connect(database_url)
    await conn.execute("UPDATE profile.outbox SET status = 'failed', last_error = 'poison' WHERE id = $1", parked.id)

    async def sample() -> None:
        while True:
            sizes.append(await conn.fetchval("SELECT count(*) FROM profile.outbox"))
            await asyncio.sleep(0.05)

    written = []
    try:
        async with (
            engine_for(database_url) as engine,
            collecting(kafka_settings, topic) as seen,
            running_relays(database_url, kafka_settings, settings, 2) as relays,
        ):
            sampler = asyncio.create_task(sample())
            try:
                for round_no in range(ROUNDS):
                    batch = [name_changed(f"L{n:04d}", round_no + 1) for n in range(ROUND_ROWS)]
                    written.extend(batch)
                    for start in range(0, ROUND_ROWS, 250):
                        await write(engine, batch[start : start + 250])

                    async def round_published() -> bool:
                        return (await status_counts(database_url)).get("pending", 0) == 1  # the blocked row

                    await wait_until(round_published, timeout=30, message=f"round {round_no} not published")

                async def cleaned() -> bool:
                    return await status_counts(database_url) == {"failed": 1, "pending": 1}

                await wait_until(cleaned, timeout=20, message="published rows were not removed")
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            deleted = sum(r.metric("outbox_relay_retention_deleted_total") for r in relays)
            expected = {str(m.id) for m in written}
            await wait_until(lambda: expected <= seen.ids(), timeout=20, message="events missing in Kafka")
        survivors = {r["id"] for r in await conn.fetch("SELECT id FROM profile.outbox")}
    finally:
        await conn.close()

    total = ROUNDS * ROUND_ROWS
    print(f"{total} rows written in {ROUNDS} rounds; largest table size seen {max(sizes)}; {deleted:.0f} deleted")
    assert deleted == total
    assert max(sizes) <= 2 * ROUND_ROWS + 2, f"the table grew to {max(sizes)} rows"
    assert survivors == {parked.id, blocked.id}, "parked and pending rows are never removed"


async def test_one_run_removes_only_rows_older_than_the_retention_in_bounded_batches(database_url: str) -> None:
    messages = [name_changed(f"A{n}", 1) for n in range(50)]
    async with engine_for(database_url) as engine:
        await write(engine, messages)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE profile.outbox SET status = 'published', published_at = now()")
        old = [m.id for m in messages[:30]]
        await conn.execute(
            "UPDATE profile.outbox SET published_at = now() - interval '2 hours' WHERE id = ANY($1::uuid[])", old
        )
        settings = relay_settings("unused", retention_s=3600, cleanup_batch_size=7, cleanup_max_batches=2)
        registry = CollectorRegistry()
        retention = Retention(settings, RelayMetrics(registry))
        shards = range(SHARD_COUNT)
        assert await retention.run(conn, shards) == 14, "at most batch size x max batches per run"
        assert not retention.due()
        assert await retention.run(conn, shards) == 14
        assert await retention.run(conn, shards) == 2
        assert await retention.run(conn, shards) == 0
        remaining = {r["id"] for r in await conn.fetch("SELECT id FROM profile.outbox")}
    finally:
        await conn.close()
    assert remaining == {m.id for m in messages[30:]}
    assert registry.get_sample_value("outbox_relay_retention_deleted_total") == 30


async def test_claiming_and_cleaning_read_their_partial_indexes_however_large_the_table(database_url: str) -> None:
    settings = relay_settings("unused", batch_size=100)
    registry = CollectorRegistry()
    conn = await asyncpg.connect(database_url)
    try:
        # 50,000 published rows (one in a hundred past the retention) and a few pending ones.
        await conn.execute(
            "INSERT INTO profile.outbox (id, aggregate_type, aggregate_id, event_type, payload, headers, status, "
            "published_at) SELECT gen_random_uuid(), 'customer', 'C' || (n % 5000), 't', '{}', '{}', "
            "CASE WHEN n % 10000 = 0 THEN 'pending' ELSE 'published' END, "
            "now() - CASE WHEN n % 100 = 1 THEN interval '1 day' ELSE interval '1 minute' END "
            "FROM generate_series(1, 50000) AS n"
        )
        await conn.execute("ANALYZE profile.outbox")
        claim = BatchPublisher(lambda _: None, settings, RelayMetrics(registry), "retention")._claim_sql
        claim_plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN {claim}", list(range(SHARD_COUNT)), [1] * SHARD_COUNT, "someone", settings.batch_size, "7"
            )
        )
        cleanup = Retention(settings, RelayMetrics(CollectorRegistry()))._sql
        cleanup_plan = "\n".join(
            r[0] for r in await conn.fetch(f"EXPLAIN {cleanup}", list(range(SHARD_COUNT)), 3600.0, 100)
        )
    finally:
        await conn.close()
    assert "ix_outbox_pending" in claim_plan, claim_plan
    assert "Seq Scan on outbox o" not in claim_plan, claim_plan
    assert "ix_outbox_published_age" in cleanup_plan, cleanup_plan
    assert "Seq Scan" not in cleanup_plan, cleanup_plan

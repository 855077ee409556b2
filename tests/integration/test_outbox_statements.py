"""libs/outbox's statements on the real database: one row, many rows and the fragment another statement
composes write the same row; the one backlog query answers the relay's gauges and the console alike."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from prometheus_client import CollectorRegistry

from libs.outbox.backlog import BacklogMetrics, OutboxBacklogReader, watch_backlog
from libs.outbox.writer import OutboxInsert, OutboxWriter
from tests.polling import eventually
from tests.relay_support import SCHEMA, engine_for, name_changed, outbox, write

_ROW = "SELECT aggregate_type, aggregate_id, event_type, payload, headers, status, attempts, created_at, shard"


async def test_one_row_many_rows_and_the_fragment_write_the_same_row(database_url: str) -> None:
    one, many, fragment = name_changed("C1", 1), [name_changed("C2", 1), name_changed("C2", 2)], name_changed("C3", 1)
    async with engine_for(database_url) as engine, engine.begin() as connection:
        writer = OutboxWriter(connection, outbox())
        await writer.add(one)
        await writer.add_many(many)
        await writer.add_many([])
    insert = OutboxInsert(SCHEMA, first_parameter=2)
    conn = await asyncpg.connect(database_url)
    try:
        # Composed after a CTE that takes $1, as the approval's statement composes it.
        await conn.execute(f"WITH unused AS (SELECT $1::text) {insert.sql}", "x", *insert.parameters(fragment))
        rows = {r["id"]: r for r in await conn.fetch(f"{_ROW}, id, seq FROM profile.outbox ORDER BY seq")}
    finally:
        await conn.close()

    assert list(rows) == [one.id, *(m.id for m in many), fragment.id]  # seq in the order written
    for message in (one, *many, fragment):
        row = rows[message.id]
        assert (row["aggregate_type"], row["aggregate_id"], row["event_type"]) == (
            message.aggregate_type,
            message.aggregate_id,
            message.event_type,
        )
        assert (row["status"], row["attempts"], row["created_at"]) == ("pending", 0, message.created_at)
        assert (json.loads(row["payload"]), json.loads(row["headers"])) == (message.payload, message.headers)


async def test_the_backlog_query_counts_pending_parked_blocked_and_waiting_rows(database_url: str) -> None:
    async with engine_for(database_url) as engine:
        reader = OutboxBacklogReader(engine, SCHEMA)
        empty = await reader.read()
        assert (empty.pending, empty.oldest_pending_at, empty.oldest_pending_age_s, empty.failed) == (0, None, 0.0, 0)

        messages = [name_changed("C1", 1), name_changed("C1", 2), name_changed("C2", 1), name_changed("C3", 1)]
        await write(engine, messages)
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE profile.outbox SET status = 'failed' WHERE id = $1", messages[0].id)
            await conn.execute("UPDATE profile.outbox SET status = 'published' WHERE id = $1", messages[3].id)
        finally:
            await conn.close()
        backlog = await reader.read()

    assert (backlog.pending, backlog.failed, backlog.blocked_customers, backlog.waiting_behind_failed) == (2, 1, 1, 1)
    assert backlog.oldest_pending_at == messages[1].created_at
    assert backlog.oldest_pending_age_s >= 0

    metrics, stop = BacklogMetrics(CollectorRegistry()), asyncio.Event()
    watcher = asyncio.create_task(watch_backlog(database_url, SCHEMA, metrics, 0.05, stop))

    async def refreshed() -> bool:
        return (metrics.pending._value.get(), metrics.parked._value.get()) == (2, 1)

    await eventually(refreshed, "the backlog gauges refreshed", timeout=10)
    stop.set()
    await watcher
    assert (metrics.pending._value.get(), metrics.parked._value.get()) == (2, 1)
    assert metrics.oldest_pending_age._value.get() > 0

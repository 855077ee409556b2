"""The outbox relay against real PostgreSQL and a real Kafka-protocol broker.

Rows go in through ``OutboxWriter`` inside a transaction, the relay runs in-process,
and what arrives is read back with a plain aiokafka consumer and the cloudevents SDK.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
from cloudevents.core.bindings.kafka import KafkaMessage as CoreKafkaMessage
from cloudevents.core.bindings.kafka import from_binary as core_from_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.kafka import KafkaMessage, from_binary
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, decode_event
from libs.kit.kafka import KafkaSettings
from libs.outbox.writer import OutboxWriter
from tests.relay_support import (
    SCHEMA,
    Collector,
    collecting,
    engine_for,
    name_changed,
    outbox,
    outbox_rows,
    random_traceparent,
    relay_settings,
    running_relay,
    wait_until,
)

CE_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type")


@contextlib.asynccontextmanager
async def relay_owning_every_shard(
    database_url: str, kafka: KafkaSettings, topic: str, *, poll_interval_s: float
) -> AsyncIterator[tuple[AsyncEngine, Collector]]:
    """A relay in this process once it holds every shard; an engine to write rows and the topic's reader."""
    async with (
        engine_for(database_url) as engine,
        collecting(kafka, topic) as seen,
        running_relay(database_url, kafka, relay_settings(topic, poll_interval_s=poll_interval_s)) as relay,
    ):
        await wait_until(lambda: relay.owns_all_shards, timeout=10, message="relay never owned the shards")
        yield engine, seen


async def test_every_row_arrives_as_a_cloudevent_in_key_order_and_is_marked_published(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    keys = [f"C{n:03d}" for n in range(12)]
    messages = []
    for version in range(1, 6):  # interleaved keys, 5 versions each: 60 rows, several batches
        for n, key in enumerate(keys):
            traceparent = random_traceparent() if n % 2 == 0 else None
            messages.append(name_changed(key, version, traceparent=traceparent))
    async with engine_for(database_url) as engine:
        # Several transactions, as the service would commit them.
        for start in range(0, len(messages), 10):
            async with engine.begin() as connection:
                writer = OutboxWriter(connection, outbox())
                for message in messages[start : start + 10]:
                    await writer.add(message)

    async with (
        collecting(kafka_settings, topic) as seen,
        running_relay(database_url, kafka_settings, relay_settings(topic)),
    ):
        await wait_until(
            lambda: len(seen.ids()) >= len(messages),
            timeout=20,
            message=lambda: f"{len(seen.ids())} of {len(messages)} events consumed",
        )
        rows = await outbox_rows(database_url)

    by_id = seen.by_id()
    assert len(seen.messages) == len(messages), "no duplicates without a crash"
    for message in messages:
        got = by_id[str(message.id)]
        assert got.key == message.aggregate_id
        assert json.loads(got.value) == json.loads(json.dumps(dict(message.payload)))
        for header in CE_HEADERS:
            assert got.headers[header] == message.headers[header], header
        assert got.headers["ce_id"] == str(message.id)
        assert got.headers["ce_subject"] == message.aggregate_id
        assert got.headers["ce_type"] == NAME_CHANGED_TYPE
        assert got.headers["content-type"] == "application/json"
        assert got.headers.get("traceparent") == message.headers.get("traceparent")
        assert decode_event(got.value).profile_version == message.payload["profileVersion"]

        row = rows[message.id]
        assert row["status"] == "published"
        assert (row["published_partition"], row["published_offset"]) == (got.partition, got.offset)
        assert row["attempts"] == 1
        assert row["last_error"] is None

        # The official SDK reads every message (1.x API and the new core bindings).
        event = from_binary(KafkaMessage(headers=got.raw_headers, key=got.key, value=got.value))
        assert event["id"] == str(message.id)
        assert event["source"] == EVENT_SOURCE
        assert event["type"] == NAME_CHANGED_TYPE
        assert event["subject"] == message.aggregate_id
        assert event["specversion"] == "1.0"
        assert event["datacontenttype"] == "application/json"
        assert event.data == json.loads(got.value)
        core_event = core_from_binary(
            CoreKafkaMessage(headers=got.raw_headers, key=got.key, value=got.value), JSONFormat()
        )
        assert core_event.get_id() == str(message.id)
        assert core_event.get_subject() == message.aggregate_id
        assert core_event.get_data() == json.loads(got.value)

    # Per key: one partition, offsets in seq (= commit) order, versions ascending.
    for key in keys:
        of_key = sorted((m for m in seen.messages if m.key == key), key=lambda m: m.offset)
        assert len({m.partition for m in of_key}) == 1
        seqs = [rows[uuid.UUID(m.event_id)]["seq"] for m in of_key]
        assert seqs == sorted(seqs), key
        assert [json.loads(m.value)["profileVersion"] for m in of_key] == [1, 2, 3, 4, 5]


async def test_notify_wakes_the_relay_long_before_the_poll_interval(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    async with relay_owning_every_shard(database_url, kafka_settings, topic, poll_interval_s=30.0) as (engine, seen):
        first = name_changed("N1", 1)
        await _write_one(engine, first)
        await wait_until(lambda: str(first.id) in seen.ids(), timeout=10, message="first row not published")
        # The relay has drained the outbox and sleeps up to 30 s; only the NOTIFY can wake it.
        for version in (2, 3):
            message = name_changed("N1", version)
            committed = time.monotonic()
            await _write_one(engine, message)
            await wait_until(
                lambda m=message: str(m.id) in seen.ids(),
                timeout=3,
                message="a committed row did not arrive soon after its NOTIFY",
            )
            assert time.monotonic() - committed < 3


async def test_polling_covers_a_lost_notification(database_url: str, kafka_settings: KafkaSettings, topic: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'ALTER TABLE "{SCHEMA}".outbox DISABLE TRIGGER outbox_notify')
    finally:
        await conn.close()
    async with relay_owning_every_shard(database_url, kafka_settings, topic, poll_interval_s=0.3) as (engine, seen):
        messages = [name_changed("P1", 1), name_changed("P2", 1)]
        for message in messages:
            await _write_one(engine, message)
        await wait_until(
            lambda: {str(m.id) for m in messages} <= seen.ids(),
            timeout=5,
            message="rows written without a NOTIFY were not found by polling",
        )
    rows = await outbox_rows(database_url)
    assert all(rows[m.id]["status"] == "published" for m in messages)


async def test_an_uncommitted_row_is_never_published(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    ghost = name_changed("U1", 1)
    async with (
        engine_for(database_url) as engine,
        collecting(kafka_settings, topic) as seen,
        running_relay(database_url, kafka_settings, relay_settings(topic, poll_interval_s=0.1)),
    ):
        async with engine.connect() as open_tx:
            await open_tx.begin()
            await OutboxWriter(open_tx, outbox()).add(ghost)
            # While that transaction is open, committed rows (of the same key too) flow past it.
            before = name_changed("U1", 2)
            await _write_one(engine, before)
            await wait_until(lambda: str(before.id) in seen.ids(), timeout=10, message="committed row not published")
            assert str(ghost.id) not in seen.ids()
            await open_tx.rollback()
        after = name_changed("U2", 1)
        await _write_one(engine, after)
        await wait_until(lambda: str(after.id) in seen.ids(), timeout=10, message="committed row not published")
    assert str(ghost.id) not in seen.ids()
    rows = await outbox_rows(database_url)
    assert ghost.id not in rows
    assert {rows[before.id]["status"], rows[after.id]["status"]} == {"published"}


async def _write_one(engine, message) -> None:
    await _write_many(engine, [message])


async def _write_many(engine, messages) -> None:
    async with engine.begin() as connection:
        writer = OutboxWriter(connection, outbox())
        for message in messages:
            await writer.add(message)

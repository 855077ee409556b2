"""When the chaos run does not drain: write what the outbox, the sync records and the topic hold.

Files next to the processes' logs: ``outbox.json`` (every row with its published position),
``sync_records.json`` and ``topic.json`` (every message on the broker, read without a group), so
a missing delivery can be followed from the outbox through the topic to the consumer groups.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.chaos.pipeline_system import TOPIC, ChaosSystem

_READ_TIMEOUT_S = 20.0


async def dump_diagnostics(system: ChaosSystem) -> None:
    async with system.db() as conn:
        outbox = await conn.fetch(
            "SELECT id::text AS id, seq, aggregate_id, status, attempts, last_error, published_partition, "
            "published_offset, created_at, published_at, payload->>'profileVersion' AS version "
            "FROM profile.outbox ORDER BY seq"
        )
        records = await conn.fetch(
            "SELECT id, event_id::text AS event_id, customer_id, system_code, sync_status, profile_version, "
            "retry_count, created_at, updated_at FROM sync.external_sync_records ORDER BY id"
        )
    _write(system, "outbox.json", [dict(r) for r in outbox])
    _write(system, "sync_records.json", [dict(r) for r in records])
    _write(system, "topic.json", await _read_topic(system.kafka.bootstrap))


async def _read_topic(bootstrap: str) -> list[dict[str, Any]]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    messages: list[dict[str, Any]] = []
    try:
        partitions = [TopicPartition(TOPIC, p) for p in sorted(reader.partitions_for_topic(TOPIC) or set())]
        if not partitions:
            return messages
        reader.assign(partitions)
        await reader.seek_to_beginning()
        ends = await reader.end_offsets(partitions)
        deadline = asyncio.get_running_loop().time() + _READ_TIMEOUT_S
        while await _behind(reader, ends) and asyncio.get_running_loop().time() < deadline:
            for batch in (await reader.getmany(timeout_ms=500)).values():
                messages.extend(_describe(record) for record in batch)
    finally:
        await reader.stop()
    return messages


async def _behind(reader: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await reader.position(tp) < end:
            return True
    return False


def _describe(record: Any) -> dict[str, Any]:
    headers = {key: value.decode() for key, value in record.headers}
    value = json.loads(record.value)
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "ceId": headers.get("ce_id"),
        "customerId": value.get("customerId"),
        "profileVersion": value.get("profileVersion"),
    }


def _write(system: ChaosSystem, name: str, content: Any) -> None:
    (system.logs / name).write_text(json.dumps(content, default=str, ensure_ascii=False, indent=1))

"""kill -9 the relay process mid-stream: nothing is lost, per-key order holds, all rows end published."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from libs.devstack.processes import ServiceProcess
from libs.kit.kafka import KafkaSettings
from tests.relay_support import (
    collecting,
    engine_for,
    name_changed,
    outbox_rows,
    status_counts,
    wait_until,
    write,
)

ROWS = 1_000
KEYS = 300
KILL_AFTER = 50  # published rows before the kill: well into the stream, far from its end


@pytest.mark.chaos
async def test_relay_killed_mid_batch_loses_nothing(
    database_url: str, kafka_settings: KafkaSettings, topic: str, artifacts_dir: Path
) -> None:
    rng = random.Random(20240611)
    keys = [f"K{n:04d}" for n in range(KEYS)]
    versions: dict[str, int] = {}
    messages = []
    for _ in range(ROWS):
        key = rng.choice(keys)
        versions[key] = versions.get(key, 0) + 1
        messages.append(name_changed(key, versions[key]))
    async with engine_for(database_url) as engine:
        for start in range(0, ROWS, 100):
            await write(engine, messages[start : start + 100])
    assert await status_counts(database_url) == {"pending": ROWS}

    log_file = artifacts_dir / f"chaos-relay-{uuid.uuid4().hex[:8]}.log"
    relay = ServiceProcess(
        name="outbox-relay",
        module="services.profile",
        args=["relay"],
        env={
            "PROFILE_DB_URL": database_url,
            "PROFILE_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "PROFILE_RELAY_TOPIC": topic,
            # Small batches with some linger: the kill lands in the middle of the stream.
            "PROFILE_RELAY_BATCH_SIZE": "10",
            "PROFILE_KAFKA_LINGER_MS": "20",
            "PROFILE_RELAY_POLL_INTERVAL_S": "0.2",
            "PROFILE_RELAY_LEADER_RETRY_S": "0.2",
            "PROFILE_LOG_LEVEL": "INFO",
        },
        log_file=log_file,
    )

    async def published() -> int:
        return (await status_counts(database_url)).get("published", 0)

    async def some_published() -> bool:
        if not relay.running:
            raise AssertionError(f"relay exited early (log: {log_file})")
        return await published() >= KILL_AFTER

    async def all_published() -> bool:
        return await published() == ROWS

    try:
        relay.start()
        await wait_until(
            some_published,
            timeout=30,
            message=f"relay published nothing (log: {log_file})",
            interval=0.02,
        )
        relay.kill()
        at_kill = await published()
        assert 0 < at_kill < ROWS, f"the kill must land mid-stream, {at_kill} of {ROWS} were published"

        relay.start()
        await wait_until(
            all_published,
            timeout=60,
            message=f"not all rows published after the restart (log: {log_file})",
        )
    finally:
        relay.stop()

    expected = {str(m.id) for m in messages}
    async with collecting(kafka_settings, topic) as seen:
        await wait_until(
            lambda: expected <= seen.ids(),
            timeout=30,
            message=lambda: f"{len(expected - seen.ids())} of {ROWS} events never reached Kafka",
        )
    assert await status_counts(database_url) == {"published": ROWS}
    print(f"killed after {at_kill} of {ROWS} rows; {len(seen.messages) - ROWS} duplicates in Kafka")

    # Per key, the first occurrence of each event follows the commit order (versions ascend).
    first_seen: dict[str, list[int]] = {}
    seen_ids: set[str] = set()
    for record in sorted(seen.messages, key=lambda r: (r.partition, r.offset)):
        if record.event_id in seen_ids:
            continue
        seen_ids.add(record.event_id)
        first_seen.setdefault(record.key, []).append(json.loads(record.value)["profileVersion"])
    for key, seq in first_seen.items():
        assert seq == list(range(1, versions[key] + 1)), (key, seq)

    # Every row's recorded position holds that very event.
    rows = await outbox_rows(database_url)
    position = {(r.partition, r.offset): r.event_id for r in seen.messages}
    for message in messages:
        row = rows[message.id]
        assert position[(row["published_partition"], row["published_offset"])] == str(message.id)

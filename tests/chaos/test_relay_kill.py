"""kill -9 one of two relay processes mid-stream: its shards move after the lease expires, nothing is lost,
per-key order holds, all rows end published; a restarted instance gets its fair share back."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest

from libs.devstack.processes import ServiceProcess
from libs.devstack.topology import Role
from libs.kit.kafka import KafkaSettings
from libs.outbox.table import SHARD_COUNT, shard_of
from libs.outbox.writer import OutboxMessage
from tests.relay_support import (
    collecting,
    engine_for,
    first_occurrence_versions,
    name_changed,
    outbox_rows,
    shard_owners,
    status_counts,
    wait_until,
    write,
)
from tests.system_support import two_instances

ROWS = 1_000
KEYS = 300
KILL_AFTER = 50  # published rows before the kill: well into the stream
KILL_AT_ROW = ROWS // 2  # rows written before the kill; the rest only after it
LEASE_TTL_S = 2.0


# Small batches with some linger: the kill lands in the middle of the stream.
RELAY_SETTINGS = {
    "PROFILE_RELAY_BATCH_SIZE": "10",
    "PROFILE_KAFKA_LINGER_MS": "30",
    "PROFILE_RELAY_POLL_INTERVAL_S": "0.2",
    "PROFILE_RELAY_RECONNECT_DELAY_S": "0.2",
    "PROFILE_RELAY_LEASE_TTL_S": str(LEASE_TTL_S),
    "PROFILE_RELAY_LEASE_RENEW_INTERVAL_S": "0.3",
}


def relay_processes(database_url: str, kafka: KafkaSettings, topic: str, logs: Path) -> list[ServiceProcess]:
    """relay-a and relay-b (their instance ids), not started yet."""
    return two_instances(
        Role.RELAY,
        "relay",
        RELAY_SETTINGS,
        database_url=database_url,
        bootstrap=kafka.bootstrap_servers,
        logs=logs,
        topic=topic,
    )


@pytest.mark.chaos
async def test_a_killed_relay_instance_loses_nothing_and_its_shards_move_after_the_lease_expires(
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
    relay_a, relay_b = relay_processes(
        database_url, kafka_settings, topic, artifacts_dir / f"chaos-relay-{uuid.uuid4().hex[:8]}"
    )
    log_a, log_b = relay_a.log_file, relay_b.log_file

    async def published() -> int:
        return (await status_counts(database_url)).get("published", 0)

    async def owners() -> dict[str, int]:
        counts: dict[str, int] = {}
        for owner in (await shard_owners(database_url)).values():
            counts[owner or "-"] = counts.get(owner or "-", 0) + 1
        return counts

    async def both_own_and_some_published() -> bool:
        for relay, log in ((relay_a, log_a), (relay_b, log_b)):
            if not relay.running:
                raise AssertionError(f"{relay.name} exited early (log: {log})")
        shares = await owners()
        return shares.get("relay-a", 0) > 0 and shares.get("relay-b", 0) > 0 and await published() >= KILL_AFTER

    async def both_own() -> bool:
        shares = await owners()
        return shares.get("relay-a", 0) > 0 and shares.get("relay-b", 0) > 0

    try:
        relay_a.start()
        relay_b.start()
        # The rows come once the two share the shards: a relay alone drains 1,000 rows in well under
        # the time a rebalance takes, and the kill must land mid-stream.
        await wait_until(both_own, timeout=30, message="the two relays did not share the shards", interval=0.02)
        # The first half goes in before the kill and the second half after it: however fast the relays
        # drain on this machine, the killed instance's shards still have rows to move when its lease expires.
        async with engine_for(database_url) as engine:
            for start in range(0, KILL_AT_ROW, 100):
                await write(engine, messages[start : start + 100])
            await wait_until(
                both_own_and_some_published,
                timeout=30,
                message=lambda: f"the two relays did not share the work (logs: {log_a}, {log_b})",
                interval=0.02,
            )
            killed_shards = {s for s, o in (await shard_owners(database_url)).items() if o == "relay-a"}
            relay_a.kill()
            killed_at = time.monotonic()
            at_kill = await published()
            for start in range(KILL_AT_ROW, ROWS, 100):
                await write(engine, messages[start : start + 100])
        assert 0 < at_kill <= KILL_AT_ROW, f"{at_kill} of {KILL_AT_ROW} published at the kill"
        orphaned = [m for m in messages[KILL_AT_ROW:] if shard_of(m.aggregate_id) in killed_shards]
        assert orphaned, "no row written after the kill falls in the killed instance's shards"

        async def b_owns_all() -> bool:
            return await owners() == {"relay-b": SHARD_COUNT}

        await wait_until(b_owns_all, timeout=LEASE_TTL_S + 10, message=f"relay-b did not take over (log: {log_b})")
        takeover_s = time.monotonic() - killed_at
        # Taken over by expiry: not before the killed instance's last lease ran out.
        assert takeover_s >= LEASE_TTL_S - 0.5, takeover_s
        assert killed_shards

        await wait_until(lambda: _all_published(database_url), timeout=60, message=f"rows left pending (log: {log_b})")

        relay_a.start()  # back, same instance id: it gets its fair share again

        async def rebalanced() -> bool:
            return await owners() == {"relay-a": SHARD_COUNT // 2, "relay-b": SHARD_COUNT // 2}

        await wait_until(rebalanced, timeout=15, message=lambda: f"no rebalance after the restart (log: {log_a})")
    finally:
        relay_a.stop()
        relay_b.stop()
    assert await owners() == {"-": SHARD_COUNT}, "stopped instances hand their shards back"

    print(
        f"killed after {at_kill} of {ROWS} rows ({len(orphaned)} of its rows written after the kill); "
        f"shards {sorted(killed_shards)} taken over after {takeover_s:.1f}s "
        f"(lease ttl {LEASE_TTL_S}s)"
    )
    await _assert_all_delivered_in_order(database_url, kafka_settings, topic, messages, versions)


async def _assert_all_delivered_in_order(
    database_url: str, kafka: KafkaSettings, topic: str, messages: list[OutboxMessage], versions: dict[str, int]
) -> None:
    expected = {str(m.id) for m in messages}
    async with collecting(kafka, topic) as seen:
        await wait_until(
            lambda: expected <= seen.ids(),
            timeout=30,
            message=lambda: f"{len(expected - seen.ids())} of {ROWS} events never reached Kafka",
        )
    assert await status_counts(database_url) == {"published": ROWS}
    print(f"{len(seen.messages) - ROWS} duplicates in Kafka")

    # Per key, the first occurrence of each event follows the commit order (versions ascend).
    for key, seq in first_occurrence_versions(seen.messages).items():
        assert seq == list(range(1, versions[key] + 1)), (key, seq)

    # Every row's recorded position holds that very event.
    rows = await outbox_rows(database_url)
    position = {(r.partition, r.offset): r.event_id for r in seen.messages}
    for message in messages:
        row = rows[message.id]
        assert position[(row["published_partition"], row["published_offset"])] == str(message.id)


async def _all_published(database_url: str) -> bool:
    return await status_counts(database_url) == {"published": ROWS}

"""The relay under failure: a broker outage parks nothing; a poison message blocks only its key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import asyncpg
from structlog.testing import capture_logs

from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from libs.outbox.table import SHARD_COUNT
from tests.relay_support import (
    collecting,
    engine_for,
    first_occurrence_versions,
    name_changed,
    outbox_rows,
    own_broker,
    relay_settings,
    running_relay,
    running_relays,
    status_counts,
    wait_until,
    write,
)


async def test_a_broker_outage_leaves_rows_pending_and_they_flow_when_it_is_back(
    database_url: str, kafka_settings: KafkaSettings, topic: str, artifacts_dir: Path
) -> None:
    # max_attempts is small on purpose: broker errors must never count towards parking.
    settings = relay_settings(
        topic, batch_size=50, poll_interval_s=0.2, max_attempts=2, producer_reset_after=3, transaction_timeout_s=1.0
    )
    with own_broker(
        artifacts_dir / "kafka-outage.log",
        request_timeout_ms=1_000,
        topic_partitions=kafka_settings.topic_partitions,
        linger_ms=1,
    ) as (broker, kafka):
        await ensure_topic(kafka, topic)
        async with engine_for(database_url) as engine, running_relay(database_url, kafka, settings) as relay:
            before = [name_changed(f"B{n}", 1) for n in range(10)]
            await write(engine, before)
            await wait_until(
                lambda: relay.metric("outbox_relay_published_total") == len(before),
                timeout=10,
                message="rows not published before the outage",
            )

            broker.kill()
            during = [name_changed(f"B{n}", v) for v in (2, 3) for n in range(10)]
            await write(engine, during)

            heads = during[:10]  # the first row of each key: the ones the relay keeps trying

            async def failed_for_a_while() -> bool:
                # Batches fail (each transaction times out or the producer cannot start) until the
                # relay gives its shards up; none of it may count towards parking.
                rows = await outbox_rows(database_url)
                retried = all(rows[m.id]["attempts"] > settings.max_attempts for m in heads)
                return retried or relay.metric("outbox_relay_gave_up_total") >= 1

            await wait_until(failed_for_a_while, timeout=30, message="relay did not keep trying during the outage")
            rows = await outbox_rows(database_url)
            assert {rows[m.id]["status"] for m in during} == {"pending"}
            assert all(rows[m.id]["last_error"] for m in heads)
            assert relay.metric("outbox_relay_parked_total") == 0

            # The same broker again on its own log: the topic and what it acknowledged are there.
            broker.start()
            async with collecting(kafka, topic) as seen:
                await wait_until(
                    lambda: {str(m.id) for m in during} <= seen.ids(),
                    timeout=30,
                    message=lambda: f"{len(seen.ids())} of {len(during)} rows arrived after the broker came back",
                )

                async def all_marked() -> bool:
                    rows = await outbox_rows(database_url)
                    return all(rows[m.id]["status"] == "published" for m in during)

                await wait_until(all_marked, timeout=10, message="rows in Kafka but not marked published")
                rows = await outbox_rows(database_url)
                by_id = seen.by_id()
                for m in during:
                    got = by_id[str(m.id)]
                    assert (rows[m.id]["published_partition"], rows[m.id]["published_offset"]) == (
                        got.partition,
                        got.offset,
                    )
                for n in range(10):
                    versions = [
                        _version(m.value)
                        for m in sorted(seen.messages, key=lambda r: (r.partition, r.offset))
                        if m.key == f"B{n}"
                    ]
                    first_seen = list(dict.fromkeys(versions))
                    # The broker kept what it acknowledged before the crash (version 1).
                    assert first_seen == [1, 2, 3], (f"B{n}", versions)
            assert await status_counts(database_url) == {"published": len(before) + len(during)}


async def test_a_poison_message_blocks_only_its_key_across_two_instances_and_says_which(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        request_timeout_ms=kafka_settings.request_timeout_ms,
        max_request_size=8_192,
    )
    settings = relay_settings(topic, batch_size=20, poll_interval_s=0.2, max_attempts=3)
    poison = name_changed("X", 1, reason="x" * 20_000)
    behind = name_changed("X", 2)
    keys = [f"Y{n:02d}" for n in range(40)]
    others = [name_changed(key, v) for v in (1, 2, 3) for key in keys]
    with capture_logs() as logs:
        async with (
            engine_for(database_url) as engine,
            collecting(kafka, topic) as seen,
            running_relays(database_url, kafka, settings, 2) as relays,
        ):
            await wait_until(
                lambda: sum(r.shards_owned for r in relays) == SHARD_COUNT and all(r.shards_owned for r in relays),
                timeout=10,
                message="the instances did not share the shards",
            )
            await write(engine, [*others[:40], poison, *others[40:80], behind, *others[80:]])

            async def parked() -> bool:
                status: str = (await outbox_rows(database_url))[poison.id]["status"]
                return status == "failed"

            await wait_until(parked, timeout=15, message="poison row was not parked")
            await wait_until(
                lambda: {str(m.id) for m in others} <= seen.ids(), timeout=10, message="other keys did not flow"
            )
            # No instance is blocked: later rows of other keys flow; X waits behind its parked row.
            later = [name_changed(keys[0], 4), name_changed(keys[-1], 4), name_changed("X", 3)]
            await write(engine, later)
            await wait_until(
                lambda: {str(later[0].id), str(later[1].id)} <= seen.ids(),
                timeout=10,
                message="rows written after the parking did not flow",
            )
            await wait_until(
                lambda: sum(r.metric("outbox_relay_blocked_keys") for r in relays) == 1,
                timeout=5,
                message="the blocked-keys gauge did not count the blocked key",
            )
            labelled = [
                r.registry.get_sample_value(
                    "outbox_relay_blocked_key", {"aggregate_id": "X", "outbox_id": str(poison.id)}
                )
                for r in relays
            ]
            rows = await outbox_rows(database_url)
            assert sum(r.metric("outbox_relay_parked_total") for r in relays) == 1

    assert sorted(labelled, key=lambda v: v is None) == [1.0, None], "exactly the owner of X's shard names it"
    blocked_lines = [e for e in logs if e["event"] == "outbox_key_blocked"]
    assert [(e["aggregate_id"], e["outbox_id"]) for e in blocked_lines] == [("X", str(poison.id))]
    assert blocked_lines[0]["waiting_rows"] >= 1
    parked_lines = [e for e in logs if e["event"] == "outbox_row_parked"]
    assert [(e["aggregate_id"], e["outbox_id"]) for e in parked_lines] == [("X", str(poison.id))]

    assert rows[poison.id]["status"] == "failed"
    assert rows[poison.id]["attempts"] == settings.max_attempts
    assert "MessageSizeTooLarge" in rows[poison.id]["last_error"]
    for waiting in (behind, later[2]):
        assert rows[waiting.id]["status"] == "pending"
        assert rows[waiting.id]["attempts"] == 0
    assert not {str(poison.id), str(behind.id), str(later[2].id)} & seen.ids()
    assert {m.key for m in seen.messages} == set(keys)
    versions = first_occurrence_versions(seen.messages)
    assert versions[keys[0]] == versions[keys[-1]] == [1, 2, 3, 4]
    assert all(versions[key] == [1, 2, 3] for key in keys[1:-1])


async def test_a_row_with_malformed_headers_is_parked_and_the_relay_goes_on(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    settings = relay_settings(topic, batch_size=20, poll_interval_s=0.2, max_attempts=2)
    broken, fine = name_changed("M1", 1), name_changed("M2", 1)
    async with engine_for(database_url) as engine:
        await write(engine, [broken, fine])
    conn = await asyncpg.connect(database_url)
    try:  # a header value that is not a string: no Kafka message can carry it as is
        await conn.execute(
            "UPDATE profile.outbox SET headers = jsonb_set(headers, '{ce_id}', '42') WHERE id = $1", broken.id
        )
    finally:
        await conn.close()
    async with (
        collecting(kafka_settings, topic) as seen,
        running_relay(database_url, kafka_settings, settings) as relay,
    ):
        await wait_until(lambda: str(fine.id) in seen.ids(), timeout=10, message="the good row was not published")

        async def parked() -> bool:
            status: str = (await outbox_rows(database_url))[broken.id]["status"]
            return status == "failed"

        await wait_until(parked, timeout=10, message="the malformed row was not parked")
        assert relay.owns_all_shards
        assert not relay.task.done()
    rows = await outbox_rows(database_url)
    assert "MalformedRowError" in rows[broken.id]["last_error"]
    assert [m.key for m in seen.messages] == ["M2"]


async def test_stop_is_prompt_while_the_broker_is_down(
    database_url: str, kafka_settings: KafkaSettings, topic: str, artifacts_dir: Path
) -> None:
    settings = relay_settings(topic, batch_size=20, poll_interval_s=0.2, shutdown_grace_s=0.5)
    # A long request timeout: without the stop grace, a batch in flight would hold the relay 20 s.
    with own_broker(artifacts_dir / "kafka-stop.log", request_timeout_ms=20_000, topic_partitions=1) as (broker, kafka):
        await ensure_topic(kafka, topic)
        async with engine_for(database_url) as engine, running_relay(database_url, kafka, settings) as relay:
            first = name_changed("S1", 1)
            await write(engine, [first])
            await wait_until(
                lambda: relay.metric("outbox_relay_published_total") == 1, timeout=10, message="not published"
            )
            broker.kill()
            stuck = name_changed("S1", 2)
            await write(engine, [stuck])
            await wait_until(
                lambda: relay.metric("outbox_relay_in_flight_rows") == 1,
                timeout=5,
                message="relay did not send the row",
            )
            took = time.monotonic()
            await relay.shutdown(timeout=10)
            took = time.monotonic() - took
            assert took < 5, f"stop took {took:.1f}s"
            assert relay.shards_owned == 0
        rows = await outbox_rows(database_url)
        assert rows[stuck.id]["status"] == "pending"


def _version(value: bytes) -> int:
    version: int = json.loads(value)["profileVersion"]
    return version

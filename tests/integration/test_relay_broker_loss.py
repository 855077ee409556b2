"""A relay that reaches PostgreSQL but not the broker gives its shards up to one that can publish.

Two relay instances share one database. Relay A's bootstrap is a broker of its own, killed
mid-test (A still reaches PostgreSQL); relay B publishes to the shared broker. A must stop
renewing its shards: within its give-up setting (plus a lease's lifetime for a batch hanging on
the dead broker) B owns every shard and publishes every customer's rows, while A's readiness
and its ``/ready`` say it gave up. When A's broker is back, A is ready again and takes its fair
share back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from libs.devstack.embedded import free_port
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from libs.kit.ops_server import start_ops_server
from libs.outbox.leases import fair_share
from libs.outbox.table import SHARD_COUNT, shard_of
from services.profile.relay import relay_statuses
from tests.relay_support import (
    RunningRelay,
    collecting,
    engine_for,
    name_changed,
    own_broker,
    relay_settings,
    running_relay,
    shard_owners,
    status_counts,
    wait_until,
    write,
)

# One customer per shard: every shard, whoever holds it, has rows waiting.
CUSTOMERS = sorted({shard_of(f"L{n:04d}"): f"L{n:04d}" for n in range(2_000)}.items())
assert len(CUSTOMERS) == SHARD_COUNT


async def test_a_relay_cut_off_from_the_broker_hands_its_shards_to_one_that_is_not(
    database_url: str, kafka_settings: KafkaSettings, topic: str, artifacts_dir: Path
) -> None:
    settings = relay_settings(
        topic,
        batch_size=20,
        poll_interval_s=0.2,
        give_up_after_failed_batches=3,
        give_up_after_s=4.0,
        broker_probe_interval_s=0.5,
        broker_probe_timeout_s=2.0,
    )
    # A gives up by its setting; a batch then hanging on the dead broker keeps its shards at most
    # until their leases expire; B takes them at its next renewal.
    handover_bound_s = settings.give_up_after_s + settings.lease_ttl_s + 2 * settings.lease_renew_interval_s + 5
    with own_broker(
        artifacts_dir / "kafka-broker-loss.log",
        request_timeout_ms=2_000,
        topic_partitions=kafka_settings.topic_partitions,
    ) as (lost, lost_kafka):
        await ensure_topic(lost_kafka, topic)
        with capture_logs() as logs:
            async with (
                engine_for(database_url) as engine,
                collecting(kafka_settings, topic) as seen,
                running_relay(database_url, lost_kafka, settings) as a,
                running_relay(database_url, kafka_settings, settings) as b,
                ops_server_of(a) as ready_url,
            ):
                await _share_the_shards(a, b)
                await _ready(ready_url, expected=200)
                written = await _both_publish(database_url, engine, a, b, version=1)

                lost.kill()
                killed_at = time.monotonic()
                second = [name_changed(customer, 2) for _, customer in CUSTOMERS]
                await write(engine, second)
                written += len(second)

                async def b_owns_every_shard() -> bool:
                    return set((await shard_owners(database_url)).values()) == {b.instance_id}

                await wait_until(
                    b_owns_every_shard,
                    timeout=handover_bound_s,
                    message=lambda: f"A still holds {a.shards_owned} shards, B {b.shards_owned}",
                )
                handed_over_s = time.monotonic() - killed_at
                reason = await _gave_up(a, b, ready_url)

                # Every customer's rows, A's former shards included, reach the live broker.
                await wait_until(
                    lambda: {str(m.id) for m in second} <= seen.ids(),
                    timeout=30,
                    message=lambda: f"{len({str(m.id) for m in second} & seen.ids())} of {len(second)} arrived",
                )
                await _all_published(database_url, written)

                # A's broker comes back: A is ready again and takes its fair share back from B.
                lost.start()
                await wait_until(lambda: a.ready, timeout=60, message="A did not notice that its broker is back")
                await _share_the_shards(a, b)
                await _ready(ready_url, expected=200)
                assert a.metric("outbox_relay_broker_healthy") == 1
                assert a.registry.get_sample_value("outbox_relay_broker_probes_total", {"result": "ok"}) == 1
                await _both_publish(database_url, engine, a, b, version=3, already=written)

    assert handed_over_s <= handover_bound_s
    gave_up = [e for e in logs if e["event"] == "relay_gave_up_shards"]
    assert [e["instance_id"] for e in gave_up] == [a.instance_id]
    assert f"gave its shards up: {gave_up[0]['reason']}; " in reason
    assert gave_up[0]["shards"], "A held shards when it gave up"
    assert [e["instance_id"] for e in logs if e["event"] == "relay_broker_answers"] == [a.instance_id]


@contextlib.asynccontextmanager
async def ops_server_of(relay: RunningRelay) -> AsyncIterator[str]:
    """The relay process's ops server with the relay's own statuses (no dependency checks); its /ready URL."""
    runner = await start_ops_server("127.0.0.1", 0, CollectorRegistry(), {}, relay_statuses(relay.relay))
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/ready"
    finally:
        await runner.cleanup()


async def _both_publish(
    database_url: str, engine: AsyncEngine, a: RunningRelay, b: RunningRelay, *, version: int, already: int = 0
) -> int:
    """Write one row per shard; both relays publish some, and all get published. Returns the rows in the table."""
    published_before = (a.metric("outbox_relay_published_total"), b.metric("outbox_relay_published_total"))
    await write(engine, [name_changed(customer, version) for _, customer in CUSTOMERS])
    await wait_until(
        lambda: (
            a.metric("outbox_relay_published_total") > published_before[0]
            and b.metric("outbox_relay_published_total") > published_before[1]
        ),
        timeout=20,
        message="both relays should publish",
    )
    await _all_published(database_url, already + len(CUSTOMERS))
    return already + len(CUSTOMERS)


async def _gave_up(a: RunningRelay, b: RunningRelay, ready_url: str) -> str:
    """A says it gave up (readiness, metrics, /ready); B does not. Returns A's reason."""
    assert a.shards_owned == 0
    assert not a.ready
    reason = a.relay.readiness.reason
    assert reason is not None
    assert reason.startswith("gave its shards up: ")
    assert a.metric("outbox_relay_broker_healthy") == 0
    assert a.metric("outbox_relay_gave_up_total") == 1
    assert b.ready
    assert b.metric("outbox_relay_broker_healthy") == 1
    body = await _ready(ready_url, expected=503)
    assert body == {"ready": False, "checks": {"publishing": False}, "reasons": {"publishing": reason}}
    return reason


async def _share_the_shards(a: RunningRelay, b: RunningRelay) -> None:
    share = fair_share(SHARD_COUNT, 2)
    await wait_until(
        lambda: (
            a.shards_owned + b.shards_owned == SHARD_COUNT
            and min(a.shards_owned, b.shards_owned) > 0
            and max(a.shards_owned, b.shards_owned) <= share
        ),
        timeout=20,
        message=lambda: f"A holds {a.shards_owned} shards, B {b.shards_owned}: not shared",
    )


async def _all_published(database_url: str, count: int) -> None:
    async def published() -> bool:
        return await status_counts(database_url) == {"published": count}

    await wait_until(published, timeout=30, message=f"not all {count} rows published")


async def _ready(url: str, *, expected: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    assert response.status_code == expected, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_relay_that_never_reaches_its_broker_hands_its_shards_over_for_fencing(
    database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    """Batches failing at once (nothing listens at A's bootstrap) count towards the give-up; the
    shards, drained, are handed over as expired leases, so B takes them over from A (and fences A's
    producer) at its next renewal, without waiting for the leases to lapse."""
    nowhere = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=1_000)
    settings = relay_settings(
        topic,
        poll_interval_s=0.2,
        give_up_after_failed_batches=3,
        give_up_after_s=60.0,
        broker_probe_interval_s=0.5,
        lease_ttl_s=30.0,
        lease_renew_interval_s=0.25,
    )
    with capture_logs() as logs:
        async with (
            engine_for(database_url) as engine,
            collecting(kafka_settings, topic) as seen,
            running_relay(database_url, kafka_settings, settings) as b,
        ):
            await wait_until(lambda: b.owns_all_shards, timeout=10, message="B did not take every shard")
            async with running_relay(database_url, nowhere, settings) as a:
                await wait_until(lambda: a.shards_owned > 0, timeout=10, message="A did not take its share from B")
                rows = [name_changed(customer, 1) for _, customer in CUSTOMERS]
                await write(engine, rows)

                async def b_owns_every_shard() -> bool:
                    return set((await shard_owners(database_url)).values()) == {b.instance_id}

                # Far below the lease's lifetime: the shards were handed over, not left to lapse.
                took_s = await wait_until(
                    b_owns_every_shard, timeout=15, message=lambda: f"A still holds {a.shards_owned} shards"
                )
                assert took_s < settings.lease_ttl_s
                assert not a.ready
                assert a.shards_owned == 0
                await wait_until(
                    lambda: {str(m.id) for m in rows} <= seen.ids(),
                    timeout=20,
                    message="B did not publish every customer's rows",
                )
                await _all_published(database_url, len(rows))
                # Nothing answers at A's bootstrap: it stays out, probing.
                await wait_until(
                    lambda: (
                        (a.registry.get_sample_value("outbox_relay_broker_probes_total", {"result": "failed"}) or 0)
                        >= 2
                    ),
                    timeout=10,
                    message="A did not keep probing its broker",
                )
                assert not a.ready
                assert b.owns_all_shards

    gave_up = [e for e in logs if e["event"] == "relay_gave_up_shards"]
    assert len(gave_up) == 1
    assert gave_up[0]["reason"] == "3 batches in a row failed with broker errors"
    expired = [e for e in logs if e["event"] == "relay_leases_expired"]
    assert expired
    assert {e["instance_id"] for e in expired} == {a.instance_id}
    taken_from_a = {
        shard
        for e in logs
        if e["event"] == "relay_leases_acquired"
        and e["instance_id"] == b.instance_id
        and a.instance_id in e["expired_owners"]
        for shard in e["shards"]
    }
    assert taken_from_a == {shard for e in expired for shard in e["shards"]}

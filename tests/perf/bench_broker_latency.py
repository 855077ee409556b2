"""commit -> broker: outbox rows committed at a steady rate (one transaction each), timed from the
commit's return to their arrival at a consumer in this process."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer

from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from tests.perf.harness import Figure, PeakRss, at_most, fresh_database, p99_figure
from tests.perf.pipeline_support import BROKER_RATE, RELAY_ONLY, STEADY_SECONDS, bench_system, steady_writes


async def commit_to_broker(url: str, bootstrap: str, rss: PeakRss | None = None) -> Figure:
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await ensure_topic(kafka, topic)
    arrived: dict[str, float] = {}
    # Apache Kafka answers a waiting fetch as soon as a record arrives: the probe waits with the default.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.monotonic()
                for record in records:
                    arrived.setdefault(dict(record.headers)["ce_id"].decode(), now)

    with bench_system(url, bootstrap, topic, RELAY_ONLY):
        reader = asyncio.create_task(consume())
        committed = await steady_writes(url, BROKER_RATE, STEADY_SECONDS)
        deadline = time.monotonic() + 30
        while len(arrived) < len(committed) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # bounded drain of the last messages
        stop.set()
        await reader
    await consumer.stop()
    latencies = [arrived[i] - t for i, t in committed.items() if i in arrived]
    missing = len(committed) - len(latencies)
    return p99_figure(
        f"commit -> broker, steady {BROKER_RATE}/s",
        latencies,
        at_most(25),
        f"{len(latencies)} events, {missing} missing",
    )


async def run(postgres_url: str, bootstrap: str) -> list[Figure]:
    url = await fresh_database(postgres_url, "bench_broker_latency")
    return [await commit_to_broker(url, bootstrap)]

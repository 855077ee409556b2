"""The relay draining a backlog of outbox rows vs. a bare aiokafka producer sending the same messages.

Our figure: rows/s from the first to the last row marked published by one real relay
process. Baseline: the same keys, values and headers sent by a bare aiokafka producer
with the same settings (acks=all, same linger and batch size), rows read beforehand.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaProducer

from libs.kit.kafka import KafkaSettings, make_producer
from libs.kit.kafka_topics import ensure_topic
from tests.perf.harness import Figure, PeakRss, fresh_database, median, of_baseline, tree_cpu_seconds
from tests.perf.pipeline_support import RELAY_ONLY, bench_system, pid
from tests.perf.profiling import profiled

BACKLOG = 200_000
RUNS = 3
CUSTOMERS = 20_000
DRAIN_TIMEOUT_S = 300.0

SEED_BACKLOG = """
WITH s AS (SELECT gen_random_uuid() AS id, g FROM generate_series(1, $1) g)
INSERT INTO profile.outbox (id, aggregate_type, aggregate_id, event_type, payload, headers, created_at)
SELECT id, 'customer', 'C' || (g % $2), 'customer.profile.name-changed.v1',
       jsonb_build_object('customerId', 'C' || (g % $2), 'applicationId', 'APP-' || g, 'oldName', '张三',
                          'newName', '李四' || g, 'profileVersion', g / $2 + 1, 'reason', '过户',
                          'changedAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
       jsonb_build_object('ce_specversion', '1.0', 'ce_id', id::text, 'ce_source', 'urn:customer-profile:bench',
                          'ce_type', 'customer.profile.name-changed.v1', 'ce_time', now()::text,
                          'ce_subject', 'C' || (g % $2), 'content-type', 'application/json',
                          'traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'),
       now()
FROM s
"""


async def count(url: str, status: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM profile.outbox WHERE status = $1", status))
    finally:
        await conn.close()


async def relay_run(
    url: str, bootstrap: str, topic: str, rss: dict[str, float], *, profile: bool
) -> tuple[float, float]:
    """Rows/s of one drain, and the relay's CPU microseconds per row over it."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM profile.outbox")
        await conn.execute(SEED_BACKLOG, BACKLOG, CUSTOMERS)
        await conn.execute("VACUUM ANALYZE profile.outbox")
    finally:
        await conn.close()
    # The relay's default batch size unless BENCH_RELAY_BATCH says otherwise: 500 to 4,000
    # measured within noise of each other once batches were pipelined.
    batch = {"PROFILE_RELAY_BATCH_SIZE": size} if (size := os.environ.get("BENCH_RELAY_BATCH")) else {}
    # Started once alive (/health), not ready: the drain is timed from the first row published.
    with bench_system(url, bootstrap, topic, RELAY_ONLY, {"relay": batch}, wait_ready=False) as system:
        sampler = PeakRss({"relay": relay_pid}) if (relay_pid := pid(system, "relay")) else None
        cpu_before = tree_cpu_seconds(relay_pid) if relay_pid else float("nan")
        with profiled("relay", {"relay": relay_pid} if profile else {}):
            first, last = await _drain(url, sampler)
        cpu_s = (tree_cpu_seconds(relay_pid) if relay_pid else float("nan")) - cpu_before
    if sampler:
        rss["relay"] = max(rss.get("relay", 0.0), sampler.peak_mb["relay"])
    return BACKLOG / (last - first), cpu_s * 1e6 / BACKLOG


async def _drain(url: str, sampler: PeakRss | None) -> tuple[float, float]:
    """perf_counter() at the first row published and at the last."""
    first = 0.0
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        if time.monotonic() > deadline:
            msg = f"the relay did not drain {BACKLOG:,} rows within {DRAIN_TIMEOUT_S:.0f} s"
            raise TimeoutError(msg)
        published = await count(url, "published")
        now = time.perf_counter()
        if sampler:
            sampler.sample()
        if published and not first:
            first = now
        if published >= BACKLOG:
            return first, now
        await asyncio.sleep(0.05)  # sampling progress, bounded by the deadline


async def baseline_run(url: str, kafka: KafkaSettings, topic: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT aggregate_id, payload::text AS payload, headers FROM profile.outbox LIMIT $1", BACKLOG
        )
    finally:
        await conn.close()
    messages = [
        (
            r["aggregate_id"].encode(),
            r["payload"].encode(),
            [(k, str(v).encode()) for k, v in __import__("json").loads(r["headers"]).items()],
        )
        for r in rows
    ]
    producer: AIOKafkaProducer = make_producer(kafka)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(topic, key=key, value=value, headers=headers) for key, value, headers in messages
        ]
        await asyncio.gather(*futures)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def run(postgres_url: str, bootstrap: str) -> tuple[list[Figure], dict[str, float]]:
    url = await fresh_database(postgres_url, "bench_relay")
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    ours: list[float] = []
    cpu_us: list[float] = []
    base: list[float] = []
    rss: dict[str, float] = {}
    for run_index in range(RUNS):
        topic = f"bench-relay-{uuid.uuid4().hex[:8]}"
        await ensure_topic(kafka, topic)
        rate, per_row_us = await relay_run(url, bootstrap, topic, rss, profile=run_index == 0)
        ours.append(rate)
        cpu_us.append(per_row_us)
        base_topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
        await ensure_topic(kafka, base_topic)
        base.append(await baseline_run(url, kafka, base_topic))
    scenario = f"relay draining {BACKLOG:,} outbox rows"
    return [
        Figure(
            scenario,
            "throughput",
            median(ours),
            median(base),
            of_baseline(0.6),
            "ev/s",
            runs=ours,
            notes=f"baseline runs: {[round(b) for b in base]}",
        ),
        Figure(scenario, "relay CPU per row", median(cpu_us), None, None, "us", runs=cpu_us),
    ], rss

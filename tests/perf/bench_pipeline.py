"""Latency through the whole pipeline at a steady rate, and the connector's delivery throughput.

* commit -> all three systems applied: the outbox row's ``created_at`` to the last of
  its three ``external_sync_records.completed_at`` (one database clock).
* connector deliveries to one system vs. the same HTTP calls from a bare aiohttp loop.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import asyncpg

from contracts.events import decode_event
from libs.kit.kafka import KafkaSettings, ensure_topic, make_producer
from services.sync_connector.sinks import encode_payload
from tests.perf.harness import Figure, fresh_database, percentile
from tests.perf.pipeline_support import (
    APPLIED_RATE,
    CONNECTOR_EVENTS,
    STEADY_SECONDS,
    SYSTEMS,
    connector_process,
    event,
    relay_process,
    steady_writes,
    stubs_process,
)


async def commit_to_applied(url: str, bootstrap: str) -> Figure:
    topic = f"bench-applied-{uuid.uuid4().hex[:8]}"
    await ensure_topic(KafkaSettings(bootstrap_servers=bootstrap), topic)
    with (
        stubs_process() as stubs_url,
        relay_process(url, bootstrap, topic),
        connector_process(url, bootstrap, topic, stubs_url),
    ):
        committed = await steady_writes(url, APPLIED_RATE, STEADY_SECONDS)
        conn = await asyncpg.connect(url)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = await conn.fetchval(
                    "SELECT count(*) FROM sync.external_sync_records WHERE sync_status='success'"
                )
                if done >= len(committed) * len(SYSTEMS):
                    break
                await asyncio.sleep(0.2)  # bounded drain
            rows = await conn.fetch(
                """SELECT extract(epoch FROM max(r.completed_at) - o.created_at) AS seconds
                   FROM profile.outbox o JOIN sync.external_sync_records r ON r.event_id = o.id
                   WHERE r.sync_status = 'success' GROUP BY o.id, o.created_at HAVING count(*) = 3"""
            )
        finally:
            await conn.close()
    latencies = [float(r["seconds"]) for r in rows]
    return Figure(
        f"commit -> CRM+CMS+CSS applied, steady {APPLIED_RATE}/s",
        "p99 latency",
        percentile(latencies, 99) * 1000,
        None,
        "<= 150 ms",
        "ms",
        notes=f"p50 {percentile(latencies, 50) * 1000:.1f} ms, {len(rows)}/{len(committed)} complete",
    )


async def connector_throughput(url: str, bootstrap: str) -> Figure:
    topic = f"bench-connector-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await ensure_topic(kafka, topic)
    producer = make_producer(kafka)
    await producer.start()
    bodies: list[str] = []
    for _ in range(CONNECTOR_EVENTS):
        event_id = uuid.uuid4()
        customer_id = f"T{event_id.hex[:16]}"
        _, headers, value = event(event_id, customer_id)
        await producer.send(
            topic,
            key=customer_id.encode(),
            value=value,
            headers=[(k, v.encode()) for k, v in json.loads(headers).items()],
        )
        bodies.append(str(event_id))
    await producer.flush()
    await producer.stop()
    with stubs_process() as stubs_url:
        with connector_process(url, bootstrap, topic, stubs_url, systems=("CRM",)):
            conn = await asyncpg.connect(url)
            try:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    done = await conn.fetchval(
                        "SELECT count(*) FROM sync.external_sync_records "
                        "WHERE system_code='CRM' AND sync_status='success'"
                    )
                    if done >= CONNECTOR_EVENTS:
                        break
                    await asyncio.sleep(0.2)  # bounded drain
                span = await conn.fetchval(
                    "SELECT extract(epoch FROM max(completed_at) - min(created_at)) "
                    "FROM sync.external_sync_records WHERE system_code='CRM'"
                )
            finally:
                await conn.close()
        ours = CONNECTOR_EVENTS / float(span)
        base = await bare_http_loop(stubs_url, bodies)
    return Figure(
        "connector deliveries to one stub system", "throughput", ours, base, ">= 5,000/s and >= 0.50", "del/s"
    )


async def bare_http_loop(stubs_url: str, event_ids: list[str], concurrency: int = 32) -> float:
    """The same calls (the connector's body for new customers, so each is applied) from plain aiohttp."""
    queue = [(key, encode_payload(key, decode_event(event(uuid.UUID(key), f"U{key[:16]}")[2]))) for key in event_ids]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while queue:
                key, body = queue.pop()
                headers = {"Content-Type": "application/json", "Idempotency-Key": key}
                async with session.post(f"{stubs_url}/api/customer/update", data=body, headers=headers) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(event_ids) / (time.perf_counter() - started)


async def run(postgres_url: str, bootstrap: str) -> list[Figure]:
    figures = []
    url = await fresh_database(postgres_url, "bench_pipeline")
    figures.append(await commit_to_applied(url, bootstrap))
    url = await fresh_database(postgres_url, "bench_pipeline")
    figures.append(await connector_throughput(url, bootstrap))
    return figures

"""Latency through the pipeline at steady rates, and the connector's delivery throughput.

* commit -> broker: outbox rows committed at a steady rate (one transaction each) are
  timed from the commit's return to their arrival at a consumer in this process.
* commit -> all three systems applied: the outbox row's ``created_at`` to the last of
  its three ``external_sync_records.completed_at`` (one database clock).
* connector deliveries to one system vs. the same HTTP calls from a bare aiohttp loop.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer

from contracts.events import decode_event
from libs.devstack.embedded import free_port
from libs.devstack.processes import ServiceProcess
from libs.kit.db import sqlalchemy_url
from libs.kit.kafka import KafkaSettings, ensure_topic, make_producer
from services.sync_connector.sinks import encode_payload
from tests.perf.harness import Figure, PeakRss, fresh_database, percentile

STEADY_SECONDS = 10.0
BROKER_RATE = 500
APPLIED_RATE = 200
CONNECTOR_EVENTS = 3_000
SYSTEMS = ("CRM", "CMS", "CSS")
GROUP_TIMEOUTS = {
    "KAFKA_SESSION_TIMEOUT_MS": "4000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "400",
    "KAFKA_REBALANCE_TIMEOUT_MS": "4000",
}

INSERT_EVENT = """
INSERT INTO profile.outbox (id, aggregate_type, aggregate_id, event_type, payload, headers, created_at)
VALUES ($1, 'customer', $2, 'customer.profile.name-changed.v1', $3::jsonb, $4::jsonb, clock_timestamp())
"""


def event(event_id: uuid.UUID, customer_id: str) -> tuple[str, str, bytes]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    payload = json.dumps(
        {
            "customerId": customer_id,
            "applicationId": f"APP-{event_id.hex[:12]}",
            "oldName": "张三",
            "newName": "李四",
            "profileVersion": 2,
            "reason": "bench",
            "changedAt": now,
        }
    )
    headers = json.dumps(
        {
            "ce_specversion": "1.0",
            "ce_id": str(event_id),
            "ce_source": "urn:bench",
            "ce_type": "customer.profile.name-changed.v1",
            "ce_time": now,
            "ce_subject": customer_id,
            "content-type": "application/json",
        }
    )
    return payload, headers, payload.encode()


async def steady_writes(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Commit one outbox row per transaction at ``rate``/s; returns event id -> monotonic commit time."""
    pool = await asyncpg.create_pool(url, min_size=4, max_size=8)
    committed: dict[str, float] = {}

    async def write_one() -> None:
        event_id = uuid.uuid4()
        customer_id = f"L{event_id.hex[:16]}"
        payload, headers, _ = event(event_id, customer_id)
        await pool.execute(INSERT_EVENT, event_id, customer_id, payload, headers)
        committed[str(event_id)] = time.monotonic()

    tasks = []
    started = time.monotonic()
    for index in range(int(rate * seconds)):
        if (delay := started + index / rate - time.monotonic()) > 0:
            await asyncio.sleep(delay)  # pacing the arrivals
        tasks.append(asyncio.create_task(write_one()))
    await asyncio.gather(*tasks)
    await pool.close()
    return committed


@contextmanager
def relay_process(url: str, bootstrap: str, topic: str) -> Iterator[ServiceProcess]:
    port = free_port()
    relay = ServiceProcess(
        "relay",
        "services.profile",
        ["relay"],
        env={
            "PROFILE_DB_URL": sqlalchemy_url(url),
            "PROFILE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PROFILE_RELAY_TOPIC": topic,
            "PROFILE_RELAY_METRICS_PORT": str(port),
            "PROFILE_LOG_LEVEL": "WARNING",
        },
        health_url=f"http://127.0.0.1:{port}/ready",
    )
    relay.start(timeout=60)
    try:
        yield relay
    finally:
        relay.stop()


@contextmanager
def connector_process(url: str, bootstrap: str, topic: str, stubs_url: str) -> Iterator[ServiceProcess]:
    port = free_port()
    connector = ServiceProcess(
        "connector",
        "services.sync_connector",
        ["serve"],
        env={
            "CONNECTOR_DB_URL": sqlalchemy_url(url),
            "CONNECTOR_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CONNECTOR_TOPIC": topic,
            "CONNECTOR_GROUP_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
            "CONNECTOR_HTTP_PORT": str(port),
            "CONNECTOR_LOG_LEVEL": "WARNING",
            **{f"CONNECTOR_{k}": v for k, v in GROUP_TIMEOUTS.items()},
            **{f"CONNECTOR_{s}_URL": stubs_url for s in SYSTEMS},
        },
        health_url=f"http://127.0.0.1:{port}/ready",
    )
    connector.start(timeout=90)
    try:
        yield connector
    finally:
        connector.stop()


@contextmanager
def stubs_process() -> Iterator[str]:
    port = free_port()
    stubs = ServiceProcess(
        "stubs",
        "services.stub_externals",
        ["serve"],
        env={"STUBS_PORT": str(port)},
        health_url=f"http://127.0.0.1:{port}/health",
    )
    stubs.start(timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stubs.stop()


async def commit_to_broker(url: str, bootstrap: str, rss: PeakRss | None = None) -> Figure:
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await ensure_topic(kafka, topic)
    arrived: dict[str, float] = {}
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                now = time.monotonic()
                for record in records:
                    arrived.setdefault(dict(record.headers)["ce_id"].decode(), now)

    with relay_process(url, bootstrap, topic):
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
    return Figure(
        f"commit -> broker, steady {BROKER_RATE}/s",
        "p99 latency",
        percentile(latencies, 99) * 1000,
        None,
        "<= 25 ms",
        "ms",
        notes=f"p50 {percentile(latencies, 50) * 1000:.1f} ms, {len(latencies)} events, {missing} missing",
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
        with connector_process(url, bootstrap, topic, stubs_url):
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
    figures.append(await commit_to_broker(url, bootstrap))
    url = await fresh_database(postgres_url, "bench_pipeline")
    figures.append(await commit_to_applied(url, bootstrap))
    url = await fresh_database(postgres_url, "bench_pipeline")
    figures.append(await connector_throughput(url, bootstrap))
    return figures

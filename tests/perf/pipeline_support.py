"""Pieces the pipeline benchmarks share: paced outbox writes and the real service processes."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from libs.devstack.embedded import free_port
from libs.devstack.processes import ServiceProcess
from libs.kit.db import sqlalchemy_url

STEADY_SECONDS = 10.0
BROKER_RATE = 500
APPLIED_RATE = 200
CONNECTOR_EVENTS = 20_000
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
def relay_process(
    url: str, bootstrap: str, topic: str, extra_env: dict[str, str] | None = None, wait_for: str = "/ready"
) -> Iterator[ServiceProcess]:
    """A relay process; ``wait_for`` is the ops path whose answer ends its start."""
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
            **(extra_env or {}),
        },
        health_url=f"http://127.0.0.1:{port}{wait_for}",
    )
    relay.start(timeout=60)
    try:
        yield relay
    finally:
        relay.stop()


@contextmanager
def connector_process(
    url: str, bootstrap: str, topic: str, stubs_url: str, systems: tuple[str, ...] = SYSTEMS
) -> Iterator[ServiceProcess]:
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
            "CONNECTOR_SYSTEMS": json.dumps(list(systems)),
            **{k.removeprefix("BENCH_"): v for k, v in os.environ.items() if k.startswith("BENCH_CONNECTOR_")},
            **{f"CONNECTOR_{s}_URL": stubs_url for s in SYSTEMS},
        },
        health_url=f"http://127.0.0.1:{port}/ready",
    )
    connector.start(timeout=90)
    try:
        yield connector
    finally:
        connector.stop()


@dataclass(frozen=True)
class Stubs:
    url: str
    pid: int | None


@contextmanager
def stubs_process() -> Iterator[Stubs]:
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
        yield Stubs(f"http://127.0.0.1:{port}", stubs.process.pid if stubs.process else None)
    finally:
        stubs.stop()

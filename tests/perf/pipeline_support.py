"""Pieces the pipeline benchmarks share: paced outbox writes and the real service processes (the topology)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from libs.devstack.topology import SYSTEMS as SYSTEMS  # noqa: PLC0414 - re-exported for the benchmarks
from libs.devstack.topology import Overrides, Role, System, Topology

STEADY_SECONDS = 10.0
BROKER_RATE = 500
APPLIED_RATE = 200
CONNECTOR_EVENTS = 20_000
RELAY_ONLY = {"relay": Role.RELAY}

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
def bench_system(
    url: str,
    bootstrap: str,
    topic: str,
    processes: Mapping[str, Role],
    overrides: Overrides | None = None,
    *,
    wait_ready: bool = True,
) -> Iterator[System]:
    """The processes a benchmark measures (``libs.devstack.topology``): relays and connectors log warnings only,
    and count as started once ready (``wait_ready``); ``BENCH_CONNECTOR_*`` variables reach every connector."""
    from_environment = {k.removeprefix("BENCH_"): v for k, v in os.environ.items() if k.startswith("BENCH_CONNECTOR_")}
    topology = Topology(
        database_url=url,
        bootstrap=bootstrap,
        logs=Path(tempfile.gettempdir()) / "profile-bench-logs" / topic,
        processes=processes,
        topic=topic,
        group_prefix=f"bench-{uuid.uuid4().hex[:6]}",
        group_session_ms=4000,
        group_heartbeat_ms=400,
        wait_ready=wait_ready,
        overrides={
            Role.RELAY: {"PROFILE_LOG_LEVEL": "WARNING"},
            Role.CONNECTOR: {"CONNECTOR_LOG_LEVEL": "WARNING", **from_environment},
            **(overrides or {}),
        },
    )
    with topology.start(90.0) as system:
        yield system


def pid(system: System, name: str) -> int | None:
    process = system.processes[name].process
    return process.pid if process else None


def pids(system: System) -> dict[str, int]:
    """Every started process of the system, by name."""
    return {name: found for name in system.processes if (found := pid(system, name)) is not None}

"""Name changes through the HTTP API vs. the same SQL transaction driven directly by asyncpg.

Our figure: approvals (``POST .../decision``, which commits profile, history,
application, audit and outbox rows) from N concurrent HTTP clients against the
real profile service process. Baseline: the same statements in one transaction per
approval from N asyncpg connections (the locking read, then the service's own write
statement, imported from its adapter). Then latency at 50% of our maximum throughput
(open loop).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from libs.devstack.processes import ServiceProcess
from libs.kit.tokens import Role
from libs.outbox.writer import OutboxInsert, OutboxMessage
from services.profile.name_changes.sql import WRITE_NAME_CHANGE_SQL
from tests.auth_support import bearer
from tests.perf.harness import (
    Figure,
    PeakRss,
    at_most,
    below,
    fresh_database,
    median,
    of_baseline,
    peak_rss_figures,
    percentile,
    run_concurrently,
)
from tests.perf.profiling import profiled
from tests.system_support import profile_alone

CLIENTS = 16
PER_RUN = 1_200
RUNS = 3
OPEN_LOOP_SECONDS = 5.0


async def seed_pending_applications(url: str, count: int, prefix: str) -> list[str]:
    """Customers with one pending application each, written set-based."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO profile.customer_profiles (customer_id, customer_name, account_type)
            SELECT $1 || g, 'Name ' || g, 'residential' FROM generate_series(1, $2) g
            """,
            prefix,
            count,
        )
        await conn.execute(
            """
            INSERT INTO profile.name_change_applications
                (application_id, customer_id, old_name, new_name, reason, status, profile_version)
            SELECT 'APP-' || $1 || g, $1 || g, 'Name ' || g, 'New ' || g, 'bench', 'pending', 1
            FROM generate_series(1, $2) g
            """,
            prefix,
            count,
        )
    finally:
        await conn.close()
    return [f"APP-{prefix}{i}" for i in range(1, count + 1)]


def chunks(items: list[str], parts: int) -> Iterator[list[str]]:
    for i in range(parts):
        yield items[i::parts]


async def http_run(base_url: str, application_ids: list[str]) -> tuple[float, list[float]]:
    body = json.dumps({"decision": "approved", "auditorId": "bench"}).encode()
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:
        shares = list(chunks(application_ids, CLIENTS))

        async def client(index: int) -> list[float]:
            # A service client keeps its token until it expires, as the audit system does.
            headers = {"Content-Type": "application/json", **bearer(Role.AUDIT_SYSTEM, subject=f"bench-{index}")}
            latencies = []
            for application_id in shares[index]:
                started = time.perf_counter()
                async with session.post(
                    f"/v1/name-change-applications/{application_id}/decision", data=body, headers=headers
                ) as response:
                    await response.read()
                    if response.status != 200:
                        msg = f"approval failed: {response.status}"
                        raise RuntimeError(msg)
                latencies.append(time.perf_counter() - started)
            return latencies

        return await run_concurrently(CLIENTS, client)


LOCK_SQL = """
SELECT a.*, c.* FROM profile.name_change_applications a
JOIN profile.customer_profiles c ON c.customer_id = a.customer_id
WHERE a.application_id = $1 FOR UPDATE
"""


def baseline_statements(
    application_id: str, customer_id: str, *, now: datetime, new_name: str, payload: dict[str, str], event_id: uuid.UUID
) -> list[tuple[str, tuple[object, ...]]]:
    """The statements the approval transaction runs (the service's own write statement), with arguments."""
    app, cust = application_id, customer_id
    audit = [
        ["APPLICATION_APPROVED", "PROFILE_UPDATED"],
        ["bench", "bench"],
        [cust, cust],
        [app, app],
        ["audit decision: approved", "name change applied"],
        [None, '{"customerName": "old", "version": 1}'],
        ['{"status": "approved"}', '{"customerName": "New", "version": 2}'],
        ["127.0.0.1", "127.0.0.1"],
        [None, None],
        ["0" * 32, "0" * 32],
    ]
    event = OutboxMessage(
        event_id, "customer", cust, "customer.profile.name-changed.v1", payload, {"traceparent": "00"}, now
    )
    write_args = (
        *(app, "completed", "bench", None, now, now, json.dumps(payload), cust, new_name, 2),
        *("old", "bench", "system", "Auto System"),
        *audit,
        *OutboxInsert.parameters(event),
    )
    return [(LOCK_SQL, (app,)), (WRITE_NAME_CHANGE_SQL, write_args)]


async def asyncpg_run(url: str, application_ids: list[str]) -> tuple[float, list[float]]:
    pool = await asyncpg.create_pool(url, min_size=CLIENTS, max_size=CLIENTS)
    shares = list(chunks(application_ids, CLIENTS))

    async def client(index: int) -> list[float]:
        latencies = []
        for application_id in shares[index]:
            customer_id = application_id.removeprefix("APP-")
            started = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                payload = {"customerId": customer_id, "newName": "New"}
                statements = baseline_statements(
                    application_id,
                    customer_id,
                    now=datetime.now(UTC),
                    new_name="New",
                    payload=payload,
                    event_id=uuid.uuid4(),
                )
                for sql, args in statements:
                    await conn.execute(sql, *args)
            latencies.append(time.perf_counter() - started)
        return latencies

    try:
        return await run_concurrently(CLIENTS, client)
    finally:
        await pool.close()


async def open_loop(base_url: str, application_ids: list[str], rate: float) -> list[float]:
    """Requests at a fixed arrival rate, independent of responses."""
    body = json.dumps({"decision": "approved", "auditorId": "bench"}).encode()
    latencies: list[float] = []
    headers = {"Content-Type": "application/json", **bearer(Role.AUDIT_SYSTEM, subject="bench")}
    async with aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=200)) as session:

        async def one(application_id: str) -> None:
            started = time.perf_counter()
            async with session.post(
                f"/v1/name-change-applications/{application_id}/decision", data=body, headers=headers
            ) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)

        tasks = []
        started = time.perf_counter()
        for index, application_id in enumerate(application_ids):
            due = started + index / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)  # pacing the arrivals, not waiting for a result
            tasks.append(asyncio.create_task(one(application_id)))
        await asyncio.gather(*tasks)
    return latencies


def service_cpu_s(service: ServiceProcess) -> float:
    if service.process is None:
        return 0.0
    supervisor = psutil.Process(service.process.pid)
    processes = [supervisor, *supervisor.children(recursive=True)]  # uvicorn's workers
    return sum(float(p.cpu_times().user + p.cpu_times().system) for p in processes)


async def run(postgres_url: str) -> tuple[list[Figure], int]:
    url = await fresh_database(postgres_url, "bench_http")
    total = RUNS * PER_RUN
    warm_ids = await seed_pending_applications(url, 200, "W")
    ours_ids = await seed_pending_applications(url, total, "H")
    base_ids = await seed_pending_applications(url, total, "B")
    open_ids = await seed_pending_applications(url, 20_000, "O")
    # One worker: on 2 cores shared with PostgreSQL and this client, a second measured no better.
    workers = os.environ.get("BENCH_PROFILE_WORKERS", "1")
    service = profile_alone(url, Path(tempfile.gettempdir()) / "profile-bench-logs", PROFILE_HTTP_WORKERS=workers)
    service.start(timeout=60)
    assert service.url is not None
    assert service.process is not None
    base_url = service.url
    rss = PeakRss({"profile API": service.process.pid})
    try:
        await http_run(base_url, warm_ids)  # warm-up: pools, prepared statements
        ours_tput, ours_lat, base_tput = [], [], []
        cpu_s = 0.0  # the service's own CPU time: a figure the other load on the machine barely moves
        for i in range(RUNS):
            before = service_cpu_s(service)
            with profiled("approvals", {"profile": service.process.pid} if i == 0 else {}):
                elapsed, latencies = await http_run(base_url, ours_ids[i * PER_RUN : (i + 1) * PER_RUN])
            cpu_s += service_cpu_s(service) - before
            rss.sample()
            ours_tput.append(len(latencies) / elapsed)
            ours_lat.extend(latencies)
            elapsed, latencies = await asyncpg_run(url, base_ids[i * PER_RUN : (i + 1) * PER_RUN])
            base_tput.append(len(latencies) / elapsed)
        max_tput = median(ours_tput)
        rate = max_tput / 2
        count = min(len(open_ids), int(rate * OPEN_LOOP_SECONDS))
        open_lat = await open_loop(base_url, open_ids[:count], rate)
        pid = service.process.pid if service.process else 0
    finally:
        service.stop()
    scenario = f"name changes via HTTP, {CLIENTS} clients"
    return [
        Figure(
            scenario,
            "throughput",
            max_tput,
            median(base_tput),
            of_baseline(0.5),
            "upd/s",
            runs=ours_tput,
            notes=f"baseline runs: {[round(b) for b in base_tput]}",
        ),
        Figure(scenario, "service CPU per approval", cpu_s / total * 1000, None, at_most(1.0), "ms"),
        Figure(scenario, "p50 latency", percentile(ours_lat, 50) * 1000, None, None, "ms"),
        Figure(scenario, "p99 latency", percentile(ours_lat, 99) * 1000, None, None, "ms"),
        Figure(
            f"same, open loop at 50% ({rate:.0f}/s)",
            "p99 latency",
            percentile(open_lat, 99) * 1000,
            None,
            below(50),
            "ms",
        ),
        *peak_rss_figures("approvals", rss.peak_mb),
    ], pid

"""Latency through the whole pipeline at a steady rate, and the connector's delivery throughput.

* commit -> all three systems applied: the outbox row's ``created_at`` to the last of
  its three ``external_sync_records.completed_at`` (one database clock).
* connector deliveries to one system vs. the same HTTP calls from a bare aiohttp loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import aiohttp
import asyncpg

from contracts.events import decode_event
from libs.devstack.topology import Overrides, Role
from libs.kit.kafka import KafkaSettings, make_producer
from libs.kit.kafka_topics import ensure_topic
from services.sync_connector.sinks import encode_payload
from tests.perf.harness import (
    Figure,
    PeakRss,
    at_most,
    fresh_database,
    of_baseline,
    p99_figure,
    peak_rss_figures,
    tree_cpu_seconds,
)
from tests.perf.pipeline_support import (
    APPLIED_RATE,
    CONNECTOR_EVENTS,
    STEADY_SECONDS,
    SYSTEMS,
    bench_system,
    event,
    pid,
    pids,
    steady_writes,
)
from tests.perf.profiling import profiled

RSS_SAMPLE_S = 0.25


async def commit_to_applied(url: str, bootstrap: str, pg_pid: int | None, kafka_pid: int | None) -> list[Figure]:
    topic = f"bench-applied-{uuid.uuid4().hex[:8]}"
    await ensure_topic(KafkaSettings(bootstrap_servers=bootstrap), topic)
    # One connector process per system (CONNECTOR_SYSTEMS), as deployed: a system's deliveries use
    # their own event loop and core, and one system's load never slows another's.
    # BENCH_APPLIED_CONNECTORS=1: one process for the three (fewer processes wake per message).
    processes: dict[str, Role] = {"stubs": Role.STUBS, "relay": Role.RELAY}
    overrides: Overrides = {}
    if os.environ.get("BENCH_APPLIED_CONNECTORS") == "1":
        processes["connector"] = Role.CONNECTOR
    else:
        processes |= {f"connector-{s}": Role.CONNECTOR for s in SYSTEMS}
        overrides = {f"connector-{s}": {"CONNECTOR_SYSTEMS": json.dumps([s])} for s in SYSTEMS}
    with bench_system(url, bootstrap, topic, processes, overrides) as system:
        rss = PeakRss(pids(system))
        stop_sampling = asyncio.Event()
        sampling = asyncio.create_task(rss.sample_every(RSS_SAMPLE_S, stop_sampling))
        busy = {**pids(system), "postgres": pg_pid, "kafka": kafka_pid}
        cpu_before = {name: tree_cpu_seconds(pid) if pid else float("nan") for name, pid in busy.items()}
        with profiled("applied", pids(system)):
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
            cpu_ms = {
                name: ((tree_cpu_seconds(pid) if pid else float("nan")) - cpu_before[name]) * 1000 / len(committed)
                for name, pid in busy.items()
            }
            rows = await conn.fetch(
                """SELECT extract(epoch FROM max(r.completed_at) - o.created_at) AS seconds
                   FROM profile.outbox o JOIN sync.external_sync_records r ON r.event_id = o.id
                   WHERE r.sync_status = 'success' GROUP BY o.id, o.created_at HAVING count(*) = 3"""
            )
        finally:
            await conn.close()
            stop_sampling.set()
            await sampling
    latencies = [float(r["seconds"]) for r in rows]
    return [
        p99_figure(
            f"commit -> CRM+CMS+CSS applied, steady {APPLIED_RATE}/s",
            latencies,
            at_most(150),
            f"{len(rows)}/{len(committed)} complete; CPU ms per event: "
            + ", ".join(f"{name} {ms:.2f}" for name, ms in cpu_ms.items()),
        ),
        *peak_rss_figures(f"{APPLIED_RATE}/s to 3 systems", rss.peak_mb),
    ]


async def connector_throughput(url: str, bootstrap: str, pg_pid: int | None) -> list[Figure]:
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
    processes = {"stubs": Role.STUBS, "connector": Role.CONNECTOR}
    crm_only: Overrides = {"connector": {"CONNECTOR_SYSTEMS": json.dumps(["CRM"])}}
    with bench_system(url, bootstrap, topic, processes, crm_only) as system:
        stubs_url, stubs_pid = system.url("stubs"), pid(system, "stubs")
        services = pids(system)
        rss = PeakRss(services)
        conn = await asyncpg.connect(url)
        try:
            with profiled("connector", services):
                ours, cpu = await _measure_drain(conn, {**services, "postgres": pg_pid}, rss)
        finally:
            await conn.close()
        base, base_cpu = await bare_http_loop(stubs_url, bodies, stubs_pid)
    per_delivery = " + ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
    busy = sum(ms for ms in cpu.values() if ms == ms)  # noqa: PLR0124 - skips NaN (external services)
    scenario = "connector deliveries to one stub system"
    return [
        Figure(
            scenario,
            "throughput",
            ours,
            base,
            of_baseline(0.5),
            "del/s",
            notes=(
                f"CPU ms per delivery: {per_delivery} (2 cores bound these processes to {2000 / busy:,.0f}/s); "
                f"baseline CPU ms per call: " + " + ".join(f"{n} {ms:.2f}" for n, ms in base_cpu.items())
            ),
        ),
        Figure(
            scenario,
            "connector CPU per delivery",
            cpu["connector"],
            base_cpu["client"],
            at_most(0.15),
            "ms",
            notes="the connector process's own CPU, its record keeping included; baseline: the bare loop's client",
        ),
        *peak_rss_figures("connector drain", rss.peak_mb),
    ]


async def _measure_drain(
    conn: asyncpg.Connection, pids: dict[str, int | None], rss: PeakRss
) -> tuple[float, dict[str, float]]:
    """Deliveries/s from the first record to the last success, and each process's CPU ms per delivery
    over the same window (sampled when the first record appears and when the last one succeeds)."""
    count_done = "SELECT count(*) FROM sync.external_sync_records WHERE system_code='CRM' AND sync_status='success'"
    deadline = time.monotonic() + 180
    while not await conn.fetchval("SELECT count(*) FROM sync.external_sync_records") and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # bounded: the connector's first record
    before = {name: tree_cpu_seconds(pid) if pid else float("nan") for name, pid in pids.items()}
    done_before = await conn.fetchval(count_done)
    while (done := await conn.fetchval(count_done)) < CONNECTOR_EVENTS and time.monotonic() < deadline:
        rss.sample()
        await asyncio.sleep(0.2)  # bounded drain
    after = {name: tree_cpu_seconds(pid) if pid else float("nan") for name, pid in pids.items()}
    span = await conn.fetchval(
        "SELECT extract(epoch FROM max(completed_at) - min(created_at)) FROM sync.external_sync_records "
        "WHERE system_code='CRM'"
    )
    measured = max(1, done - done_before)
    return CONNECTOR_EVENTS / float(span), {n: (after[n] - before[n]) * 1000 / measured for n in pids}


async def bare_http_loop(
    stubs_url: str, event_ids: list[str], stubs_pid: int | None, concurrency: int = 32
) -> tuple[float, dict[str, float]]:
    """The same calls (the connector's body for new customers, so each is applied) from plain aiohttp.

    Returns calls/s and the CPU ms per call of this client and of the stub server.
    """
    queue = [(key, encode_payload(key, decode_event(event(uuid.UUID(key), f"U{key[:16]}")[2]))) for key in event_ids]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while queue:
                key, body = queue.pop()
                headers = {"Content-Type": "application/json", "Idempotency-Key": key}
                async with session.post(f"{stubs_url}/api/customer/update", data=body, headers=headers) as response:
                    await response.read()

        stubs_before = tree_cpu_seconds(stubs_pid) if stubs_pid else float("nan")
        client_before = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        client = time.process_time() - client_before
        stubs = (tree_cpu_seconds(stubs_pid) if stubs_pid else float("nan")) - stubs_before
    calls = len(event_ids)
    return calls / elapsed, {"client": client * 1000 / calls, "stubs": stubs * 1000 / calls}


async def run(
    postgres_url: str, bootstrap: str, postgres_pid: int | None = None, kafka_pid: int | None = None
) -> list[Figure]:
    url = await fresh_database(postgres_url, "bench_pipeline")
    figures = await commit_to_applied(url, bootstrap, postgres_pid, kafka_pid)
    url = await fresh_database(postgres_url, "bench_pipeline")
    return figures + await connector_throughput(url, bootstrap, postgres_pid)

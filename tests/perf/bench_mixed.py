"""Seed 004's "100+ concurrent users": 128 clients mixing reads and approvals against the real profile service.

Each client has its own connection: 70% reads (a customer, a page of customers, a customer's
versions, evenly) and 30% approvals of pending name changes (each application decided once).
Two phases of ``SECONDS`` each:

* back to back (the issue's scenario): every client sends its next request as soon as the last
  is answered, so 128 requests are always in flight; errors (any answer but 200, or none), p99
  over every request, throughput, the service's CPU per request. With 128 in flight, the mean
  latency is 128 / throughput (Little's law): p99 < 200 ms needs well over 640 requests/s;
* users: each client waits a random pause (mean ``THINK_S``) between requests, as a person does
  (about 128 / ``THINK_S`` requests/s offered): errors and p99.

The service's peak RSS (its workers included) over both. No baseline: the targets are absolute.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from libs.devstack.processes import ServiceProcess
from libs.kit.tokens import Role
from tests.auth_support import bearer
from tests.perf.bench_http_updates import seed_pending_applications, service_cpu_s
from tests.perf.harness import (
    Figure,
    PeakRss,
    Target,
    below,
    fresh_database,
    p99_figure,
    peak_rss_figures,
    percentile,
)
from tests.perf.profiling import profiled
from tests.system_support import profile_alone

CLIENTS = 128
SECONDS = float(os.environ.get("BENCH_MIXED_SECONDS", "15"))
WARM_UP_SECONDS = 2.0
APPROVALS_SHARE = 0.3
CUSTOMERS = 20_000  # each with one pending application: more than the run can approve
PAGE = 20
APPROVAL = json.dumps({"decision": "approved", "auditorId": "bench"}).encode()
THINK_S = 1.0
MIX = "70% reads / 30% approvals"


class Mix:
    """What the clients do next and what came of it (one event loop: no locks needed)."""

    def __init__(self, customer_ids: list[str]) -> None:
        self.customer_ids = customer_ids
        self._pending: Iterator[str] = iter([f"APP-{c}" for c in customer_ids])
        self.latencies: list[float] = []
        self.by_kind: defaultdict[str, list[float]] = defaultdict(list)
        self.kinds: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def next_application(self) -> str:
        return next(self._pending)

    def record(self, kind: str, started: float, outcome: str | None) -> None:
        latency = time.perf_counter() - started
        self.latencies.append(latency)
        self.by_kind[kind].append(latency)
        self.kinds[kind] += 1
        if outcome is not None:
            self.errors[f"{kind}: {outcome}"] += 1


async def _user(session: aiohttp.ClientSession, index: int, mix: Mix, until: float, think_s: float) -> None:
    chance = random.Random(index)  # a workload mix, not a secret
    reader = {"Accept": "application/json", **bearer(Role.VIEWER, subject=f"viewer-{index}")}
    auditor = {"Content-Type": "application/json", **bearer(Role.AUDIT_SYSTEM, subject=f"auditor-{index}")}
    while time.perf_counter() < until:
        if think_s:
            await asyncio.sleep(chance.expovariate(1 / think_s))  # a person's pause, not a wait for a result
        customer = chance.choice(mix.customer_ids)
        if chance.random() < APPROVALS_SHARE:
            kind, method, path, headers, body = (
                "approve",
                "POST",
                f"/v1/name-change-applications/{mix.next_application()}/decision",
                auditor,
                APPROVAL,
            )
        else:
            kind, path = chance.choice(
                [
                    ("customer", f"/v1/customers/{customer}"),
                    ("list", f"/v1/customers?limit={PAGE}"),
                    ("versions", f"/v1/customers/{customer}/versions"),
                ]
            )
            method, headers, body = "GET", reader, None
        started = time.perf_counter()
        try:
            async with session.request(method, path, data=body, headers=headers) as response:
                await response.read()
                outcome = None if response.status == 200 else str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        mix.record(kind, started, outcome)


async def _users(base_url: str, mix: Mix, seconds: float, think_s: float = 0.0) -> float:
    """Every client for ``seconds``; returns the wall time."""
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(_user(session, i, mix, until, think_s) for i in range(CLIENTS)))
        return time.perf_counter() - started


async def run(postgres_url: str) -> list[Figure]:
    url = await fresh_database(postgres_url, "bench_mixed")
    customer_ids = [app.removeprefix("APP-") for app in await seed_pending_applications(url, CUSTOMERS, "M")]
    workers = os.environ.get("BENCH_PROFILE_WORKERS", "1")
    service = profile_alone(url, Path(tempfile.gettempdir()) / "profile-bench-logs", PROFILE_HTTP_WORKERS=workers)
    service.start(timeout=60)
    assert service.url is not None
    assert service.process is not None
    rss = PeakRss({"profile API": service.process.pid})
    stop_sampling = asyncio.Event()
    sampling = asyncio.create_task(rss.sample_every(0.25, stop_sampling))
    try:
        mix = Mix(customer_ids)
        await _users(service.url, mix, WARM_UP_SECONDS)  # pools, prepared statements, caches
        with profiled("mixed", {"profile": service.process.pid}):
            figures = await _phase(service, mix, f"{CLIENTS} clients back to back, 70% reads / 30% approvals", 0.0)
        figures += await _phase(
            service, mix, f"{CLIENTS} users, {THINK_S:g} s pauses, 70% reads / 30% approvals", THINK_S
        )
    finally:
        stop_sampling.set()
        await sampling
        service.stop()
    return [*figures, *peak_rss_figures(f"{CLIENTS} users", rss.peak_mb)]


async def _phase(service: ServiceProcess, mix: Mix, scenario: str, think_s: float) -> list[Figure]:
    assert service.url is not None
    mix.latencies.clear()
    mix.by_kind.clear()
    mix.kinds.clear()
    mix.errors.clear()
    cpu_before = service_cpu_s(service)
    elapsed = await _users(service.url, mix, SECONDS, think_s)
    requests = len(mix.latencies)
    cpu_ms = (service_cpu_s(service) - cpu_before) / max(1, requests) * 1000
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(mix.kinds.items()))
    # Which requests make the p99: each kind's p50 / p99 in ms.
    by_kind = ", ".join(
        f"{kind} {percentile(lat, 50) * 1000:.0f}/{percentile(lat, 99) * 1000:.0f}"
        for kind, lat in sorted(mix.by_kind.items())
    )
    return [
        Figure(
            scenario,
            "errors",
            sum(mix.errors.values()),
            None,
            Target("==", 0),
            notes=f"{requests:,} requests in {elapsed:.1f} s ({kinds}); errors: {dict(mix.errors)}",
        ),
        p99_figure(scenario, mix.latencies, below(200), f"p50/p99 ms by kind: {by_kind}"),
        Figure(scenario, "throughput", requests / elapsed, None, None, "req/s"),
        Figure(scenario, "service CPU per request", cpu_ms, None, None, "ms"),
    ]

"""Shared pieces of the benchmarks: real services, timing, statistics and the report table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg
import psutil

from libs.devstack.embedded import EmbeddedKafka, EmbeddedPostgres
from migrations.runner import upgrade_all


@dataclass
class Figure:
    """One row of the report: our figure, the baseline from the same run, their ratio."""

    scenario: str
    metric: str
    ours: float
    baseline: float | None = None
    target: str = ""
    unit: str = ""
    runs: list[float] = field(default_factory=list)
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline


@dataclass
class Services:
    postgres_url: str
    kafka_bootstrap: str
    postgres_pid: int | None = None  # the embedded server's postmaster (None for external services)


@contextmanager
def real_services() -> Iterator[Services]:
    """``BENCH_DATABASE_URL`` / ``BENCH_KAFKA_BOOTSTRAP`` if set, else embedded ones."""
    if (url := os.environ.get("BENCH_DATABASE_URL")) and (bootstrap := os.environ.get("BENCH_KAFKA_BOOTSTRAP")):
        yield Services(url, bootstrap)
        return
    logs = Path(tempfile.gettempdir()) / "profile-bench-logs"
    postgres = EmbeddedPostgres(log_file=logs / "postgres.log")
    broker = EmbeddedKafka(log_file=logs / "kafka.log")
    postgres.start()
    broker.start()
    try:
        yield Services(postgres.url, broker.bootstrap, postgres.process.pid if postgres.process else None)
    finally:
        broker.stop()
        postgres.stop()


async def fresh_database(server_url: str, name: str) -> str:
    """A new migrated database on the server (libpq URL)."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.get_running_loop().run_in_executor(None, upgrade_all, url)
    return url


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def run_concurrently(clients: int, work: Callable[[int], Awaitable[list[float]]]) -> tuple[float, list[float]]:
    """Run ``clients`` workers; returns (wall seconds, every latency in seconds)."""
    started = time.perf_counter()
    results = await asyncio.gather(*(work(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return elapsed, [latency for worker in results for latency in worker]


class PeakRss:
    """Samples the resident set size of some processes (and their children)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)

    def sample(self) -> None:
        for name, process in self._processes.items():
            try:
                rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
            except psutil.Error:
                continue
            self.peak_mb[name] = max(self.peak_mb[name], rss / 1_048_576)

    async def sample_every(self, interval_s: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                continue


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds a process and its children used so far (exited children included once reaped)."""
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
    except psutil.Error:
        return float("nan")
    return total


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def render_table(figures: list[Figure]) -> str:
    header = f"{'scenario':<44} {'metric':<18} {'ours':>12} {'baseline':>12} {'ratio':>7}  target"
    lines = [header, "-" * len(header)]
    for f in figures:
        baseline = f"{f.baseline:>12.1f}" if f.baseline is not None else f"{'-':>12}"
        ratio = f"{f.ratio:>7.2f}" if f.ratio is not None else f"{'-':>7}"
        lines.append(f"{f.scenario:<44} {f.metric + ' ' + f.unit:<18} {f.ours:>12.1f} {baseline} {ratio}  {f.target}")
    return "\n".join(lines)


def write_json(path: Path, figures: list[Figure]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))

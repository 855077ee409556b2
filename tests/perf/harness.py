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
from typing import Literal

import asyncpg
import psutil

from libs.devstack.embedded import EmbeddedKafka, EmbeddedPostgres
from migrations.runner import upgrade_all


@dataclass(frozen=True)
class Target:
    """What a row must reach: our figure (or its ratio to the same-run baseline) against a bound."""

    op: Literal["<=", "<", ">=", "=="]
    bound: float
    of_baseline: bool = False
    note: str = ""  # what the bound stands for, e.g. "(seed 004)"

    def met(self, ours: float, ratio: float | None) -> bool | None:
        value = ratio if self.of_baseline else ours
        if value is None or value != value:  # noqa: PLR0124 - NaN: not measured
            return None
        return {
            "<=": value <= self.bound,
            "<": value < self.bound,
            ">=": value >= self.bound,
            "==": value == self.bound,
        }[self.op]

    def __str__(self) -> str:
        return " ".join(
            part for part in (self.op, f"{self.bound:g}", "of baseline" if self.of_baseline else "", self.note) if part
        )


def at_most(bound: float, note: str = "") -> Target:
    return Target("<=", bound, note=note)


def below(bound: float, note: str = "") -> Target:
    return Target("<", bound, note=note)


def of_baseline(at_least: float) -> Target:
    return Target(">=", at_least, of_baseline=True)


RSS_TARGET = at_most(150)  # MB, every service under the benchmarks' loads (issue 19)


@dataclass
class Figure:
    """One row of the report: our figure, the baseline from the same run, their ratio, and the target."""

    scenario: str
    metric: str
    ours: float
    baseline: float | None = None
    target: Target | None = None
    unit: str = ""
    runs: list[float] = field(default_factory=list)
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        """None: no target (a figure reported for its own sake)."""
        return None if self.target is None else self.target.met(self.ours, self.ratio)


def p99_figure(scenario: str, latencies_s: list[float], target: Target | None, more: str = "") -> Figure:
    """The p99 of ``latencies_s`` in ms, with the p50 (and ``more``) in the notes."""
    notes = f"p50 {percentile(latencies_s, 50) * 1000:.1f} ms" + (f", {more}" if more else "")
    return Figure(scenario, "p99 latency", percentile(latencies_s, 99) * 1000, None, target, "ms", notes=notes)


def peak_rss_figures(scenario: str, peak_mb: dict[str, float]) -> list[Figure]:
    """One row per process: its peak resident set (children included) during the scenario."""
    return [
        Figure(f"peak RSS {name} ({scenario})", "memory", mb, None, RSS_TARGET, "MB") for name, mb in peak_mb.items()
    ]


@dataclass
class Services:
    postgres_url: str
    kafka_bootstrap: str
    postgres_pid: int | None = None  # the embedded server's postmaster (None for external services)
    kafka_pid: int | None = None  # the embedded broker's JVM (None for an external broker)


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
        yield Services(
            postgres.url,
            broker.bootstrap,
            postgres.process.pid if postgres.process else None,
            broker.process.pid if broker.process else None,
        )
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


def _met(figure: Figure) -> str:
    return {None: "-", True: "yes", False: "NO"}[figure.met]


def render_table(figures: list[Figure]) -> str:
    header = f"{'scenario':<52} {'metric':<28} {'ours':>10} {'baseline':>10} {'ratio':>6}  {'target':<22} met"
    lines = [header, "-" * len(header)]
    for f in figures:
        baseline = f"{f.baseline:>10.1f}" if f.baseline is not None else f"{'-':>10}"
        ratio = f"{f.ratio:>6.2f}" if f.ratio is not None else f"{'-':>6}"
        target = str(f.target or "-")
        lines.append(
            f"{f.scenario:<52} {f.metric + ' ' + f.unit:<28} {f.ours:>10.2f} {baseline} {ratio}  {target:<22} {_met(f)}"
        )
    return "\n".join(lines)


def render_markdown(figures: list[Figure]) -> str:
    """The same table for docs/performance.md."""
    lines = [
        "| scenario | metric | ours | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        baseline = f"{f.baseline:,.1f}" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        ours = f"{f.ours:,.2f} {f.unit}"
        lines.append(f"| {f.scenario} | {f.metric} | {ours} | {baseline} | {ratio} | {f.target or '-'} | {_met(f)} |")
    return "\n".join(lines)


def write_json(path: Path, figures: list[Figure]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "figures": [
            {**asdict(f), "target": str(f.target) if f.target else None, "ratio": f.ratio, "met": f.met}
            for f in figures
        ],
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))

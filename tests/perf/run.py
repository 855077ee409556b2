"""``make bench``: every scenario on real services, one table with ratios, results to JSON.

``BENCH_DATABASE_URL`` / ``BENCH_KAFKA_BOOTSTRAP`` point it at external services;
otherwise embedded PostgreSQL and Apache Kafka are started. ``BENCH_ONLY=http,relay`` runs a subset
(http, mixed, relay, broker, pipeline, backup). ``BENCH_PROFILE=folder`` also records py-spy profiles
of the service processes (``tests/perf/profiling.py``). Every row prints its target and whether it is
met; the same table in Markdown goes next to the JSON (``latest.md``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from tests.perf import (
    bench_backup,
    bench_broker_latency,
    bench_http_updates,
    bench_mixed,
    bench_pipeline,
    bench_relay,
)
from tests.perf.harness import (
    Figure,
    Services,
    machine,
    peak_rss_figures,
    real_services,
    render_markdown,
    render_table,
    write_json,
)

RESULTS = Path(os.environ.get("BENCH_RESULTS", "bench-results/latest.json"))


async def _http(services: Services) -> list[Figure]:
    figures, _ = await bench_http_updates.run(services.postgres_url)
    return figures


async def _mixed(services: Services) -> list[Figure]:
    return await bench_mixed.run(services.postgres_url)


async def _relay(services: Services) -> list[Figure]:
    figures, rss = await bench_relay.run(services.postgres_url, services.kafka_bootstrap)
    return [*figures, *peak_rss_figures("relay drain", rss)]


async def _broker(services: Services) -> list[Figure]:
    return await bench_broker_latency.run(services.postgres_url, services.kafka_bootstrap)


async def _pipeline(services: Services) -> list[Figure]:
    return await bench_pipeline.run(
        services.postgres_url, services.kafka_bootstrap, services.postgres_pid, services.kafka_pid
    )


async def _backup(services: Services) -> list[Figure]:
    return await bench_backup.run(services.postgres_url)


SCENARIOS: dict[str, Callable[[Services], Awaitable[list[Figure]]]] = {
    "http": _http,
    "mixed": _mixed,
    "relay": _relay,
    "broker": _broker,
    "pipeline": _pipeline,
    "backup": _backup,
}


async def main() -> int:
    wanted = [name for name in os.environ.get("BENCH_ONLY", ",".join(SCENARIOS)).split(",") if name]
    figures: list[Figure] = []
    with real_services() as services:
        print(f"machine: {machine()}", flush=True)
        for name in wanted:
            print(f"scenario: {name} ...", flush=True)
            figures.extend(await SCENARIOS[name](services))
    figures.append(
        Figure(
            "peak RSS of this benchmark process",
            "memory",
            psutil.Process().memory_info().rss / 1_048_576,
            None,
            None,
            "MB",
        )
    )
    print()
    print(render_table(figures))
    checked = [f for f in figures if f.met is not None]
    unmet = [f"{f.scenario} / {f.metric}" for f in checked if not f.met]
    print(f"\ntargets met: {len(checked) - len(unmet)} of {len(checked)}" + (f"; not met: {unmet}" if unmet else ""))
    notes = [f"- {f.scenario}: {f.notes}" for f in figures if f.notes]
    if notes:
        print("\n" + "\n".join(notes))
    write_json(RESULTS, figures)
    RESULTS.with_suffix(".md").write_text(render_markdown(figures) + "\n")
    print(f"\nresults written to {RESULTS} and {RESULTS.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

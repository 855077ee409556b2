"""``make bench``: every scenario on real services, one table with ratios, results to JSON."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.perf import bench_http_updates, bench_relay
from tests.perf.harness import Figure, machine, real_services, render_table, write_json

RESULTS = Path(os.environ.get("BENCH_RESULTS", "bench-results/latest.json"))


async def main() -> int:
    figures: list[Figure] = []
    with real_services() as services:
        print(f"machine: {machine()}", flush=True)
        print("scenario: name changes through the HTTP API ...", flush=True)
        http_figures, _ = await bench_http_updates.run(services.postgres_url)
        figures.extend(http_figures)
        print("scenario: relay draining a backlog ...", flush=True)
        relay_figures, _ = await bench_relay.run(services.postgres_url, services.kafka_bootstrap)
        figures.extend(relay_figures)
    print()
    print(render_table(figures))
    write_json(RESULTS, figures)
    print(f"\nresults written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

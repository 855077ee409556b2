"""The whole pipeline under faults: 2 relays, 2 connectors, the profile service and the stub systems as
real processes on a PostgreSQL and a broker of their own, a load of mixed name changes through the HTTP
API, and meanwhile SIGKILLs, broker outages (one hung, one that loses the broker's data), a PostgreSQL
kill -9, one external system failing and then down, another slow. After the faults it drains and checks
invariants 1-5 of DESIGN.md against the database and what the stub systems applied.

``CHAOS_PROFILE=short`` (the default: CI and ``make test``): 40 customers x 3 changes, one round of
faults, under a minute. ``CHAOS_PROFILE=full``: 200 customers x 5 changes, three rounds, about three
minutes. Alone: ``.venv/bin/pytest tests/chaos -m chaos -s`` (``-s`` shows the summary, which is also
written to ``summary.json`` next to every process's log).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_support import authorize
from tests.chaos.pipeline_checks import Facts, check_invariants, gather_facts, wait_for_drain
from tests.chaos.pipeline_faults import FaultInjector, FaultLog
from tests.chaos.pipeline_load import LoadPlan, LoadStats, ProfileClient, customer_ids, run_load
from tests.chaos.pipeline_system import ChaosSystem, chaos_system


@dataclass(frozen=True)
class ChaosProfile:
    load: LoadPlan
    rounds: int
    first_round_at_s: float
    gap_s: float  # quiet time between rounds
    drain_timeout_s: float


# The load is paced to end about when the last round of faults does, so the drain time measures how
# long the pipeline takes to catch up with what the faults held back.
PROFILES = {
    "short": ChaosProfile(LoadPlan(customers=40, changes=3, clients=3, duration_s=24.0), 1, 4.0, 0.0, 90.0),
    "full": ChaosProfile(LoadPlan(customers=200, changes=5, clients=4, duration_s=100.0), 3, 8.0, 14.0, 240.0),
}


@pytest.fixture
async def system(artifacts_dir: Path) -> AsyncIterator[ChaosSystem]:
    async with chaos_system(artifacts_dir) as running:
        yield running


@pytest.mark.chaos
@pytest.mark.timeout(900)
async def test_every_committed_change_reaches_every_system_once_through_faults(system: ChaosSystem) -> None:
    name = os.environ.get("CHAOS_PROFILE", "short")
    profile = PROFILES[name]
    started = time.monotonic()
    fault_log = FaultLog(started)
    async with httpx.AsyncClient(timeout=10) as http:
        authorize(http)
        operator = ProfileClient(http, system.urls["profile"], LoadStats())
        faults = FaultInjector(system, http, operator, fault_log, since=datetime.now(UTC))
        try:
            load, _ = await asyncio.gather(
                run_load(http, system.urls["profile"], profile.load, system.run_id, seed=int(started)),
                faults.run_rounds(profile.rounds, profile.first_round_at_s, profile.gap_s),
            )
        finally:
            (system.logs / "faults.json").write_text(json.dumps(fault_log.events, ensure_ascii=False))
        drained_at = await wait_for_drain(system, profile.drain_timeout_s)
        facts = await gather_facts(system, http)

    check_invariants(facts, customer_ids(profile.load, system.run_id), profile.load.changes, fault_log.broker_lost_at)

    summary = _summary(name, profile, facts, load, fault_log, started, drained_at)
    (system.logs / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    print(  # the chaos summary is for the person running it
        f"\nchaos[{name}] {profile.load.customers} customers x {profile.load.changes} changes by "
        f"{profile.load.clients} clients, {profile.rounds} fault round(s): events committed "
        f"{summary['eventsCommitted']}, deliveries {summary['deliveries']} = {summary['appliedOnce']} applied once "
        f"+ {summary['superseded']} superseded, duplicates absorbed {summary['duplicatesAbsorbed']}, re-driven "
        f"after broker data loss {summary['redriven']}, load retries {summary['loadRetries']}; drained "
        f"{summary['drainAfterLastFaultS']}s after the last fault (load ended at {summary['loadEndedAtS']}s, "
        f"last fault at {summary['lastFaultAtS']}s), {summary['totalS']}s in all. "
        f"Details: {system.logs / 'summary.json'}"
    )


def _summary(
    name: str,
    profile: ChaosProfile,
    facts: Facts,
    load: LoadStats,
    faults: FaultLog,
    started: float,
    drained_at: float,
) -> dict[str, Any]:
    assert faults.last_fault_cleared is not None
    assert load.finished_at is not None
    return {
        "profile": name,
        "customers": profile.load.customers,
        "changesPerCustomer": profile.load.changes,
        "clients": profile.load.clients,
        "eventsCommitted": len(facts.events),
        "deliveries": len(facts.events) * 3,
        "appliedOnce": facts.counts["applied"],
        "superseded": facts.counts["superseded"],
        "duplicatesAbsorbed": facts.counts["duplicates absorbed"],
        "faultedCalls": facts.counts["faulted calls"],
        "redriven": faults.redriven,
        "rejectedApplications": load.rejected_applications,
        "loadRetries": sum(load.retries.values()),
        "loadRetriesByReason": dict(load.retries),
        "loadEndedAtS": round(load.finished_at - started, 1),
        "lastFaultAtS": round(faults.last_fault_cleared - started, 1),
        "drainAfterLastFaultS": round(drained_at - faults.last_fault_cleared, 1),
        "drainAfterLoadEndedS": round(drained_at - load.finished_at, 1),
        "totalS": round(time.monotonic() - started, 1),
        "faults": faults.events,
    }

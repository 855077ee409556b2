"""Two connector processes share the consumer groups; one is SIGKILLed mid-load.

Every event must still reach every stub system exactly once by Idempotency-Key,
in per-customer order, with exactly one success record per (event, system), and
the survivor's groups must end with every offset committed.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.devstack.processes import ServiceProcess
from libs.devstack.topology import Role
from libs.kit.kafka import KafkaSettings
from tests.connector_support import SECRETS, SYSTEMS, ConnectorHarness, connector_harness, name_changed
from tests.polling import eventually
from tests.system_support import two_instances

# CHAOS_PROFILE=full runs a larger load; short is the default (CI, make test).
CUSTOMERS = 100 if os.environ.get("CHAOS_PROFILE") == "full" else 40
VERSIONS = 2
KILL_AT_FRACTION = 0.2


CONNECTOR_SETTINGS = {
    "CONNECTOR_HTTP_TIMEOUT_S": "1.0",
    "CONNECTOR_CLAIM_LEASE_S": "3.0",
    "CONNECTOR_RETRY_POLL_INTERVAL_S": "0.2",
    "CONNECTOR_BACKOFF_BASE_S": "0.05",
    "CONNECTOR_BACKOFF_MAX_S": "0.5",
    "CONNECTOR_MAX_RETRY_COUNT": "10",
    "CONNECTOR_SHUTDOWN_GRACE_S": "3",
}


def _connectors(harness: ConnectorHarness, group_prefix: str, logs: Path) -> list[ServiceProcess]:
    """Two connector processes on the harness's database, topic and stub systems, not started yet."""
    return two_instances(
        Role.CONNECTOR,
        "connector",
        CONNECTOR_SETTINGS,
        database_url=harness.database_url,
        bootstrap=harness.kafka.bootstrap_servers,
        logs=logs,
        topic=harness.topic,
        topic_partitions=harness.kafka.topic_partitions,
        group_prefix=group_prefix,
        # A killed member is evicted when its session times out: short, so the test is quick.
        group_session_ms=2000,
        group_heartbeat_ms=250,
        secrets=SECRETS,
        external_systems_url=harness.stub.url,
    )


async def _metrics(harness: ConnectorHarness, process: ServiceProcess) -> dict[tuple[str, str], float]:
    """(sample name, system_code) -> value, summed over other labels."""
    assert process.url is not None
    async with harness.http.get(f"{process.url}/metrics") as response:
        text = await response.text()
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("system_code", ""))
            values[key] = values.get(key, 0.0) + sample.value
    return values


@pytest.fixture
async def harness(database_url: str, kafka_settings: KafkaSettings, topic: str) -> AsyncIterator[ConnectorHarness]:
    async with connector_harness(database_url, kafka_settings, topic) as harness:
        yield harness


@pytest.mark.chaos
async def test_two_connectors_one_killed_mid_load_every_event_applied_once(
    harness: ConnectorHarness, artifacts_dir: Path
) -> None:
    for code in SYSTEMS:  # a little latency per call, so the load is still running when the kill lands
        await harness.inject_fault({"system": code, "mode": "latency", "latencyMs": 10})
    group_prefix = f"sync-connector-chaos-{uuid.uuid4().hex[:8]}"
    victim, survivor = _connectors(
        harness, group_prefix, artifacts_dir / f"chaos-connector-kill-{uuid.uuid4().hex[:8]}"
    )
    try:
        await asyncio.gather(asyncio.to_thread(victim.start), asyncio.to_thread(survivor.start))

        async def both_own_partitions_of_every_group() -> bool:
            for process in (victim, survivor):
                metrics = await _metrics(harness, process)
                if any(metrics.get(("consumer_assigned_partitions", code), 0) < 1 for code in SYSTEMS):
                    return False
            return True

        await eventually(both_own_partitions_of_every_group, "both connectors in every group", timeout=60)

        event_ids: dict[str, list[str]] = {}

        async def produce_version(version: int) -> None:
            for n in range(CUSTOMERS):
                customer = f"K{n:03d}"
                event_id = await harness.produce(name_changed(customer, version, new_name=f"N{n}-{version}"))
                event_ids.setdefault(customer, []).append(event_id)

        # Version 1 goes in before the kill and the later ones after it: however fast the deliveries run on
        # this machine, the kill lands mid-load and the victim's partitions still carry work to move.
        await produce_version(1)
        total = CUSTOMERS * VERSIONS * len(SYSTEMS)

        async def successes() -> int:
            count: int = await harness.db.fetchval(
                "SELECT count(*) FROM sync.external_sync_records WHERE sync_status = 'success'"
            )
            return count

        async def kill_point() -> bool:
            return await successes() >= total * KILL_AT_FRACTION

        await eventually(kill_point, "a fifth of the deliveries done", timeout=60)
        victim_attempts = sum(
            v for (name, _), v in (await _metrics(harness, victim)).items() if name == "sync_attempts_total"
        )
        assert victim_attempts > 0, "the victim must have been delivering when it was killed"
        await asyncio.to_thread(victim.kill)
        killed_at = time.monotonic()
        done_at_kill = await successes()
        for version in range(2, VERSIONS + 1):
            await produce_version(version)

        async def all_delivered() -> bool:
            return await successes() == total

        await eventually(all_delivered, "every (event, system) delivered after the kill", timeout=120)
        drain_s = time.monotonic() - killed_at

        async def survivor_committed_everything() -> bool:
            totals = [await harness.committed_total(f"{group_prefix}.{code.lower()}") for code in SYSTEMS]
            return totals == [CUSTOMERS * VERSIONS] * len(SYSTEMS)

        await eventually(survivor_committed_everything, "every offset committed by the survivor", timeout=60)
        survivor_metrics = await _metrics(harness, survivor)
        # The victim's partitions moved: the survivor alone holds every partition of every group.
        for code in SYSTEMS:
            assert survivor_metrics[("consumer_assigned_partitions", code)] == harness.kafka.topic_partitions, code
    finally:
        await asyncio.to_thread(victim.kill)
        await asyncio.to_thread(survivor.stop)

    all_ids = {event_id for ids in event_ids.values() for event_id in ids}
    rows = await harness.db.fetch("SELECT sync_status, count(*) AS n FROM sync.external_sync_records GROUP BY 1")
    assert {row["sync_status"]: row["n"] for row in rows} == {"success": total}
    stats = await harness.stub_stats()
    for code in SYSTEMS:
        applied_keys = [c.headers["Idempotency-Key"] for c in harness.stub.state.received(code) if c.status == 200]
        assert sorted(applied_keys) == sorted(all_ids), code  # exactly once each, by Idempotency-Key
        assert (stats[code]["appliedKeys"], stats[code]["conflicts"]) == (len(all_ids), 0), code
        assert stats[code]["overlappingCalls"] == 0, code  # never two calls in flight for one key
        for customer in event_ids:
            assert harness.applied_versions(code, customer) == list(range(1, VERSIONS + 1)), (code, customer)
    duplicates = sum(stats[code]["duplicateCalls"] for code in SYSTEMS)
    claims_lost = sum(v for (name, _), v in survivor_metrics.items() if name == "sync_claims_lost_total")
    print(  # the chaos summary is for the person running it
        f"\nconnector kill: {total} deliveries, {done_at_kill} done at the kill, drained {drain_s:.1f}s after it, "
        f"{duplicates} duplicate calls absorbed by the stubs, {claims_lost:.0f} claims lost by the survivor"
    )

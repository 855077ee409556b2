"""Two connector instances in the same groups: a second one joins while many deliveries are retrying.

Both retry schedulers race for the same due records and the consumer groups
rebalance mid-load; still one call in flight per key, one success per
(event, system), and every customer's versions in order at every system.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from services.sync_connector.runtime import ConnectorRuntime
from tests.connector_support import SYSTEMS, ConnectorHarness, metric, name_changed, running_connector
from tests.polling import eventually

CUSTOMERS = [f"S{n:02d}" for n in range(20)]


async def test_a_second_instance_joining_mid_retry_never_doubles_a_call(harness: ConnectorHarness) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 503})
    # No breaker in the way here: both schedulers must keep racing for the same records.
    settings = harness.settings(breaker_failure_threshold=10_000, backoff_max_s=0.1)
    event_ids: list[str] = []
    async with running_connector(settings) as first:
        for version in (1, 2):
            event_ids += [await harness.produce(name_changed(c, version, new_name=f"{c}-{version}")) for c in CUSTOMERS]

        async def crm_retrying() -> bool:
            count: int = await harness.db.fetchval(
                "SELECT count(*) FROM sync.external_sync_records WHERE system_code = 'CRM' AND retry_count > 0"
            )
            return count >= len(CUSTOMERS)

        await eventually(crm_retrying, "CRM deliveries retrying")
        async with ConnectorRuntime(settings, tracer_provider=TracerProvider()) as second:
            # The second scheduler starts at once; its consumers join the groups and force a rebalance.
            for version in (3, 4):
                event_ids += [
                    await harness.produce(name_changed(c, version, new_name=f"{c}-{version}")) for c in CUSTOMERS
                ]

            async def both_schedulers_retried() -> bool:
                return all(
                    metric(r, "sync_retry_scheduler_claims_total", system_code="CRM") > 0 for r in (first, second)
                )

            await eventually(both_schedulers_retried, "both schedulers claiming CRM retries", timeout=30)
            await harness.clear_faults()
            await harness.inject_fault({"system": "CRM", "mode": "latency", "latencyMs": 20})

            async def all_delivered() -> bool:
                count: int = await harness.db.fetchval(
                    "SELECT count(*) FROM sync.external_sync_records WHERE sync_status = 'success'"
                )
                return count == len(event_ids) * len(SYSTEMS)

            await eventually(all_delivered, "every (event, system) delivered", timeout=60)
            claims_lost = sum(metric(r, "sync_claims_lost_total", system_code="CRM") for r in (first, second))
            assert claims_lost == 0

    stats = await harness.stub_stats()
    for code in SYSTEMS:
        assert (stats[code]["appliedKeys"], stats[code]["overlappingCalls"]) == (len(event_ids), 0), code
        assert stats[code]["conflicts"] == 0, code
        for customer in CUSTOMERS:
            assert harness.applied_versions(code, customer) == [1, 2, 3, 4], (code, customer)
    # Exactly one applied attempt per (event, system): no success was recorded twice.
    assert await harness.db.fetchval("SELECT count(*) FROM sync.external_sync_attempts WHERE outcome = 'applied'") == (
        len(event_ids) * len(SYSTEMS)
    )

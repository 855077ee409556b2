"""The per-system circuit breaker: opens on a down system, defers (never fails) its deliveries, probes,
closes after recovery; the other systems never notice."""

from __future__ import annotations

from services.sync_connector.breaker import BreakerState
from tests.connector_support import SYSTEMS, ConnectorHarness, metric, name_changed, running_connector
from tests.polling import eventually

CUSTOMERS = [f"C8{n:02d}" for n in range(8)]


async def test_breaker_opens_on_a_down_system_defers_and_closes_after_recovery(harness: ConnectorHarness) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "down"})
    settings = harness.settings(breaker_failure_threshold=3, breaker_cooldown_s=0.4)
    async with running_connector(settings) as runtime:

        def transitions(to_state: str, system: str = "CRM") -> float:
            return metric(runtime, "circuit_breaker_transitions_total", system_code=system, to_state=to_state)

        event_ids = [await harness.produce(name_changed(customer, 1)) for customer in CUSTOMERS]

        async def opened() -> bool:
            return transitions("open") >= 1

        await eventually(opened, "the CRM breaker to open")

        # CMS and CSS deliver everything meanwhile.
        async def others_done() -> bool:
            statuses = [await harness.statuses(event_id) for event_id in event_ids]
            return all(s.get("CMS") == s.get("CSS") == "success" for s in statuses)

        await eventually(others_done, "CMS and CSS delivered")

        # While CRM stays down, the breaker probes with one trial per cool-down and re-opens.
        async def probed_twice() -> bool:
            return transitions("half_open") >= 2 and transitions("open") >= 2

        await eventually(probed_twice, "two failed probes")
        crm = [(await harness.records(event_id))["CRM"] for event_id in event_ids]
        assert {row["sync_status"] for row in crm} == {"retrying"}  # deferred, never failed
        assert metric(runtime, "sync_deferred_total", system_code="CRM", reason="circuit_open") >= 1
        # Deferred deliveries spend no attempt, and neither do the probes: only the calls made while the
        # breaker was still closed are tries of their records (the first wave, the retries before it opened).
        spent_while_closed = settings.breaker_failure_threshold + len(CUSTOMERS)
        assert sum(row["retry_count"] for row in crm) <= spent_while_closed
        attempt_rows = sum([len(await harness.attempts(event_id, "CRM")) for event_id in event_ids])
        assert attempt_rows <= spent_while_closed
        calls = metric(runtime, "sync_attempts_total", system_code="CRM", result="retryable")
        assert calls <= spent_while_closed + transitions("half_open")
        assert (await harness.stub_stats())["CRM"]["faultedCalls"] == calls
        assert await harness.dead_letters() == []

        await harness.clear_faults()

        async def crm_done() -> bool:
            statuses = [await harness.statuses(event_id) for event_id in event_ids]
            return all(s == dict.fromkeys(SYSTEMS, "success") for s in statuses)

        await eventually(crm_done, "CRM delivered after recovery")
        assert runtime.breakers["CRM"].state is BreakerState.CLOSED
        assert metric(runtime, "circuit_breaker_state", system_code="CRM") == BreakerState.CLOSED
        assert transitions("closed") == 1
        for system in ("CMS", "CSS"):
            assert metric(runtime, "circuit_breaker_state", system_code=system) == BreakerState.CLOSED
            assert transitions("open", system) == 0
    stats = await harness.stub_stats()
    assert {code: stats[code]["appliedKeys"] for code in SYSTEMS} == dict.fromkeys(SYSTEMS, len(CUSTOMERS))

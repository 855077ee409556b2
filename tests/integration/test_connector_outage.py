"""Outages end in delivery: hours of a system down on a clock the test moves, a passed deadline, and a breaker
permit that a database error between the permit and the commit can no longer leak.

The connector runs for real (Kafka, PostgreSQL, the stub systems); only its clock is the test's
(``ManualClock``): real time plus jumps. Deadlines, backoff, claim leases and the breakers' cool-downs are
decided on it, so ten hours of an outage take seconds and nothing sleeps.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.sync_connector.breaker import BreakerState
from services.sync_connector.runtime import ConnectorRuntime
from tests.connector_support import (
    SYSTEMS,
    ConnectorHarness,
    ManualClock,
    claims_seen,
    fail_next_claims,
    metric,
    name_changed,
    running_connector,
)
from tests.polling import eventually

HOUR = 3600.0
CAP_S = 300.0


def transitions(runtime: ConnectorRuntime, to_state: str, system: str) -> float:
    return metric(runtime, "circuit_breaker_transitions_total", system_code=system, to_state=to_state)


async def rows_of(harness: ConnectorHarness, system: str) -> dict[str, int]:
    """What the delivery keeps in PostgreSQL for one system: records, attempts, dead letters, lanes."""
    row = await harness.db.fetchrow(
        """
        SELECT (SELECT count(*) FROM sync.external_sync_records WHERE system_code = $1) AS records,
               (SELECT count(*) FROM sync.external_sync_attempts a JOIN sync.external_sync_records r
                  ON r.id = a.record_id WHERE r.system_code = $1) AS attempts,
               (SELECT count(*) FROM sync.dead_letters WHERE system_code = $1) AS dead_letters,
               (SELECT count(*) FROM sync.customer_sync_state WHERE system_code = $1) AS lanes
        """,
        system,
    )
    assert row is not None
    return dict(row)


async def nothing_in_flight(harness: ConnectorHarness, system: str) -> bool:
    in_flight: int = await harness.db.fetchval(
        "SELECT count(*) FROM sync.external_sync_records WHERE system_code = $1 AND claim_token IS NOT NULL", system
    )
    return in_flight == 0


async def longest_wait_s(harness: ConnectorHarness, clock: ManualClock, system: str) -> float:
    """How far ahead the furthest next attempt of the system's open records is scheduled."""
    furthest = await harness.db.fetchval(
        "SELECT max(next_attempt_at) FROM sync.external_sync_records "
        "WHERE system_code = $1 AND sync_status IN ('pending', 'retrying')",
        system,
    )
    return 0.0 if furthest is None else (furthest - clock.now()).total_seconds()


def outage_settings(harness: ConnectorHarness, **overrides: Any) -> Any:
    """The production retry numbers (backoff from 1 s to 300 s, breaker after 5 failures, 30 s cool-down)."""
    return harness.settings(
        **{
            "backoff_base_s": 1.0,
            "backoff_max_s": CAP_S,
            "breaker_failure_threshold": 5,
            "breaker_cooldown_s": 30.0,
            "retry_poll_interval_s": 0.05,
            **overrides,
        }
    )


async def test_a_ten_hour_outage_costs_time_and_rows_per_event_never_rows_per_attempt(  # noqa: PLR0915 - one story
    harness: ConnectorHarness,
) -> None:
    clock = ManualClock()
    await harness.inject_fault({"system": "CSS", "mode": "status", "status": 503})
    async with running_connector(outage_settings(harness), clock) as runtime:
        breaker = runtime.breakers["CSS"]
        event_ids: list[str] = []
        versions: dict[str, int] = {}

        async def produce(customers: list[str]) -> None:
            for customer in customers:
                versions[customer] = versions.get(customer, 0) + 1
                event_ids.append(await harness.produce(name_changed(customer, versions[customer])))

            async def others_done() -> bool:
                for event_id in event_ids:
                    statuses = await harness.statuses(event_id)
                    if not (statuses.get("CRM") == statuses.get("CMS") == "success" and "CSS" in statuses):
                        return False
                return await nothing_in_flight(harness, "CSS")

            await eventually(others_done, "CRM and CMS delivered, CSS recorded")

        await produce([f"C9{n:03d}" for n in range(20)])

        async def opened() -> bool:
            return breaker.state is BreakerState.OPEN and await nothing_in_flight(harness, "CSS")

        await eventually(opened, "the CSS breaker to open")
        at_opening = await rows_of(harness, "CSS")
        assert at_opening["attempts"] <= 5 + 20  # the first wave and the retries before the breaker opened

        # Ten hours: jump to each probe, let it fail, look at the schedule. Renames go on meanwhile.
        probe_waits: list[float] = []
        furthest: list[float] = []
        more_at = [3 * HOUR, 6 * HOUR]
        while clock.offset_s < 10 * HOUR:
            if more_at and clock.offset_s >= more_at[0]:
                more_at.pop(0)
                # New customers, and a second change of five waiting ones.
                first = len(versions)
                await produce([f"C9{n:03d}" for n in range(first, first + 10)] + [f"C9{n:03d}" for n in range(5)])
            wait_s = breaker.seconds_until_probe()
            probe_waits.append(wait_s)
            reopened = transitions(runtime, "open", "CSS") + 1
            clock.advance(wait_s + 0.01)

            async def probed(reopened: float = reopened) -> bool:
                return transitions(runtime, "open", "CSS") >= reopened and await nothing_in_flight(harness, "CSS")

            await eventually(probed, f"a probe at {clock.offset_s / HOUR:.2f} h")
            furthest.append(await longest_wait_s(harness, clock, "CSS"))

        after_outage = await rows_of(harness, "CSS")
        events = len(event_ids)
        customers = len(versions)
        # The schedule stays capped: the probes back off from the cool-down to the cap and stay there,
        # and no record is ever scheduled further ahead than the cap.
        assert probe_waits[0] <= 30.0  # the first cool-down, partly waited out already
        assert probe_waits[1:5] == pytest.approx([60.0, 120.0, 240.0, CAP_S], abs=0.5)
        assert max(probe_waits) == pytest.approx(CAP_S, abs=0.5)
        assert max(furthest) <= CAP_S + 1
        assert len(probe_waits) < 10 * HOUR / CAP_S + 5  # one probe at a time, at most one per cap
        # Growth: one record per event, one lane per customer; no attempt row and no dead letter while
        # the breaker was open, however many probes were made.
        assert after_outage == {
            "records": events,
            "attempts": at_opening["attempts"],
            "dead_letters": 0,
            "lanes": customers,
        }
        stats = await harness.stub_stats()
        assert stats["CSS"]["faultedCalls"] == at_opening["attempts"] + len(probe_waits)
        statuses = [await harness.statuses(event_id) for event_id in event_ids]
        assert {s["CSS"] for s in statuses} <= {"pending", "retrying"}  # waiting (or parked behind an older one)
        print(  # the measurement the README quotes (pytest -s)
            f"\n10 h outage of CSS: {events} events, {customers} customers, {len(probe_waits)} probes; rows at "
            f"the opening {at_opening}, after 10 h {after_outage}: "
            f"{(after_outage['records'] + after_outage['attempts']) / events:.2f} record+attempt rows per event"
        )

        # CSS is back: the next probe succeeds and everything is delivered, with no operator action.
        await harness.clear_faults()
        clock.advance(breaker.seconds_until_probe() + 0.01)

        async def all_delivered() -> bool:
            return all([await harness.statuses(e) == dict.fromkeys(SYSTEMS, "success") for e in event_ids])

        await eventually(all_delivered, "every change delivered to CSS after the outage", timeout=60)
        assert breaker.state is BreakerState.CLOSED
        assert await harness.dead_letters() == []
        final = await rows_of(harness, "CSS")
        # One success row per event on top of what the outage left.
        assert final == {**after_outage, "attempts": after_outage["attempts"] + events}
        print(f"after recovery {final}")
        for customer, last in versions.items():
            assert harness.applied_versions("CSS", customer) == list(range(1, last + 1))
    stats = await harness.stub_stats()
    assert {code: stats[code]["appliedKeys"] for code in SYSTEMS} == dict.fromkeys(SYSTEMS, len(event_ids))


async def test_a_passed_deadline_dead_letters_with_a_metric_and_a_log_line(harness: ConnectorHarness) -> None:
    clock = ManualClock()
    await harness.inject_fault({"system": "CSS", "mode": "status", "status": 503})
    settings = outage_settings(harness, css_delivery_deadline_s=2 * HOUR, breaker_failure_threshold=2)
    async with running_connector(settings, clock) as runtime:
        event_ids = [await harness.produce(name_changed(f"C95{n}", 1)) for n in range(3)]

        async def waiting_behind_the_breaker() -> bool:
            statuses = [await harness.statuses(event_id) for event_id in event_ids]
            return all(s == {"CRM": "success", "CMS": "success", "CSS": "retrying"} for s in statuses) and (
                runtime.breakers["CSS"].state is BreakerState.OPEN
            )

        await eventually(waiting_behind_the_breaker, "CSS waiting behind its open breaker")
        css = [(await harness.records(event_id))["CSS"] for event_id in event_ids]
        assert {(row["deliver_by"] - row["created_at"]) // timedelta(minutes=1) for row in css} == {120}

        with capture_logs() as logs:
            clock.advance(2 * HOUR - 60)  # a minute before: nothing fails

            async def probed() -> bool:
                return transitions(runtime, "half_open", "CSS") >= 1 and await nothing_in_flight(harness, "CSS")

            await eventually(probed, "a probe before the deadline")
            assert {s["CSS"] for s in [await harness.statuses(e) for e in event_ids]} == {"retrying"}
            clock.advance(61)

            async def failed() -> bool:
                return all([(await harness.statuses(e))["CSS"] == "failed" for e in event_ids])

            await eventually(failed, "CSS failed at its deadline")
        letters = await harness.dead_letters()
        assert sorted((str(x["event_id"]), x["system_code"], x["reason"]) for x in letters) == sorted(
            (event_id, "CSS", "deadline") for event_id in event_ids
        )
        assert metric(runtime, "sync_dead_letters_total", system_code="CSS", reason="deadline") == 3
        lines = [line for line in logs if line["event"] == "sync_failed_dead_lettered"]
        assert sorted(line["event_id"] for line in lines) == sorted(event_ids)
        assert {(line["reason"], line["system_code"], line["log_level"]) for line in lines} == {
            ("deadline", "CSS", "error")
        }
        for event_id in event_ids:
            row = (await harness.records(event_id))["CSS"]
            assert "deadline passed" in row["error_message"]
            if await harness.attempts(event_id, "CSS"):
                assert "Last error: HTTP 503" in row["error_message"]
        messages = await harness.dlq_messages("CSS", 3)
        assert {dict(m.headers)["x-dlq-reason"].decode().split(":")[0] for m in messages} == {"deadline"}
        assert metric(runtime, "sync_dead_letters_total", system_code="CRM", reason="deadline") == 0


async def test_a_database_error_between_the_permit_and_the_commit_leaks_no_trial(harness: ConnectorHarness) -> None:
    """Regression: the probe's claim fails in the database after the breaker handed out its one trial; the
    trial comes back at once (not only when written off), the next probe goes, and after recovery every
    change is delivered without a restart."""
    clock = ManualClock()
    await harness.inject_fault({"system": "CRM", "mode": "down"})
    # No growth of the cool-down (cap below it): probes every 30 s; a lost trial is written off only
    # after 30 s + the call timeout (6 s), so the test's 30.5 s steps never reach that backstop.
    settings = outage_settings(harness, breaker_failure_threshold=2, backoff_max_s=0.2, backoff_base_s=0.05)
    async with running_connector(settings, clock) as runtime:
        breaker = runtime.breakers["CRM"]
        event_ids = [await harness.produce(name_changed(f"C96{n}", 1)) for n in range(3)]

        async def opened() -> bool:
            # Every event read for CRM too: a message the CRM consumer reads only after the clock moves
            # would take the trial from the handler and meet the refused claim there, not in the scheduler.
            read = [("CRM" in await harness.records(e)) for e in event_ids]
            return breaker.state is BreakerState.OPEN and all(read) and await nothing_in_flight(harness, "CRM")

        await eventually(opened, "the CRM breaker to open with every event read")
        await fail_next_claims(harness.db, "sync.external_sync_records", where="NEW.system_code = 'CRM'")

        with capture_logs() as logs:
            clock.advance(30.5)

            async def probed_after_the_fault() -> bool:
                # The trial was taken again and made its call, and its result is recorded: a result recorded
                # after the clock's next jump would schedule that record a cool-down past the next probe.
                return transitions(runtime, "open", "CRM") >= 2 and await nothing_in_flight(harness, "CRM")

            await eventually(probed_after_the_fault, "a probe after the failed claim", timeout=10)
        assert await claims_seen(harness.db) >= 2  # the refused claim, then the probe's
        assert metric(runtime, "sync_retry_scheduler_errors_total", system_code="CRM") >= 1
        assert not [line for line in logs if "without a result" in str(line.get("reason", ""))]  # no write-off
        assert transitions(runtime, "half_open", "CRM") == 1  # both trials in one half-open spell: no write-off

        await harness.clear_faults()
        clock.advance(30.5)

        async def delivered() -> bool:
            return all([await harness.statuses(e) == dict.fromkeys(SYSTEMS, "success") for e in event_ids])

        await eventually(delivered, "CRM delivered after recovery, no restart")
        assert breaker.state is BreakerState.CLOSED
        assert await harness.dead_letters() == []

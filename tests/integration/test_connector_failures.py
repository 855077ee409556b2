"""The sync-connector when an external system fails: retries, dead letters, isolation, restarts."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest
from cloudevents.v1.kafka import KafkaMessage, from_binary

from contracts.events import NAME_CHANGED_TYPE, CustomerNameChanged
from tests.connector_support import SYSTEMS, ConnectorHarness, metric, name_changed, running_connector
from tests.polling import eventually

CRM_FAILED = {"CRM": "failed", "CMS": "success", "CSS": "success"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_crm_retries_503s_while_cms_and_css_do_not_wait(harness: ConnectorHarness) -> None:
    # Two 503s, then a slow success: CMS and CSS must finish while CRM is still at it.
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 503, "count": 2})
    await harness.inject_fault({"system": "CRM", "mode": "latency", "latencyMs": 2000, "count": 1})
    async with running_connector(harness.settings()) as runtime:
        event_id = await harness.produce(name_changed("C200", 1))

        async def others_done() -> dict[str, str]:
            statuses = await harness.statuses(event_id)
            return statuses if statuses.get("CMS") == statuses.get("CSS") == "success" else {}

        assert (await eventually(others_done, "CMS and CSS success"))["CRM"] in {"pending", "retrying"}

        async def crm_waiting_on_its_third_attempt() -> asyncpg.Record | None:
            row = (await harness.records(event_id))["CRM"]
            return row if row["sync_status"] == "retrying" and row["retry_count"] == 2 else None

        retrying = await eventually(crm_waiting_on_its_third_attempt, "CRM retrying a second time")
        assert retrying is not None
        assert (retrying["last_http_status"], retrying["next_attempt_at"] is not None) == (503, True)

        await eventually(harness.statuses_become(event_id, dict.fromkeys(SYSTEMS, "success")), "CRM success")
        crm = (await harness.records(event_id))["CRM"]
        assert (crm["retry_count"], crm["last_http_status"], crm["next_attempt_at"], crm["error_message"]) == (
            2,
            200,
            None,
            None,
        )
        assert await harness.attempts(event_id, "CRM") == [("retryable", 503), ("retryable", 503), ("applied", 200)]
        assert harness.calls_to("CRM") == 1
        assert metric(runtime, "sync_attempts_total", system_code="CRM", result="retryable") == 2
        assert metric(runtime, "external_sync_transitions_total", system_code="CRM", status="retrying") == 2


async def test_400_fails_at_once_and_a_passed_deadline_fails_both_dead_lettered(harness: ConnectorHarness) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 400, "count": 1})
    # CRM's own delivery deadline, short; no breaker, so that every call is a try of the record.
    settings = harness.settings(crm_delivery_deadline_s=1.0, breaker_failure_threshold=1000)
    async with running_connector(settings) as runtime:
        rejected_event = name_changed("C300", 1)
        rejected_id = await harness.produce(rejected_event, traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")
        await eventually(harness.statuses_become(rejected_id, CRM_FAILED), "CRM failed on 400")
        crm = (await harness.records(rejected_id))["CRM"]
        assert (crm["retry_count"], crm["last_http_status"]) == (0, 400)
        assert "400" in crm["error_message"]
        assert await harness.attempts(rejected_id, "CRM") == [("rejected", 400)]

        await harness.inject_fault({"system": "CRM", "mode": "down"})
        down_id = await harness.produce(name_changed("C301", 1))
        await eventually(harness.statuses_become(down_id, CRM_FAILED), "CRM failed at its deadline")
        crm = (await harness.records(down_id))["CRM"]
        tries = await harness.attempts(down_id, "CRM")
        assert len(tries) >= 3  # retried with backoff (0.05 s doubling, capped at 0.2 s) for one second
        assert set(tries) == {("retryable", None)}
        assert (crm["retry_count"], crm["last_http_status"], crm["completed_at"] is not None) == (
            len(tries) - 1,
            None,
            True,
        )
        assert (crm["deliver_by"] - crm["created_at"]).total_seconds() == pytest.approx(1.0, abs=0.5)
        assert crm["completed_at"] >= crm["deliver_by"]  # not a moment before its deadline
        assert "connection_error" in crm["error_message"]

        # One dead-letter row per failed record, with the payload, the last error and the attempts.
        letters = await harness.dead_letters()
        assert [(str(x["event_id"]), x["system_code"], x["reason"], x["attempts"]) for x in letters] == [
            (rejected_id, "CRM", "rejected", 1),
            (down_id, "CRM", "deadline", len(tries)),
        ]
        assert msgspec.json.decode(letters[0]["payload"])["customerId"] == "C300"
        assert letters[0]["last_http_status"] == 400
        assert "connection_error" in letters[1]["last_error"]

        await _assert_dead_letter_messages(harness, rejected_event, rejected_id, down_id)

        async def published() -> bool:
            return all(x["published_at"] is not None for x in await harness.dead_letters())

        await eventually(published, "dead letters marked published")
        assert metric(runtime, "sync_dead_letters_total", system_code="CRM", reason="rejected") == 1
        assert metric(runtime, "sync_dead_letters_total", system_code="CRM", reason="deadline") == 1
        assert metric(runtime, "sync_dead_letters_published_total", system_code="CRM") == 2

        # A failed record is final for redeliveries: no new attempt (an admin retry re-drives it).
        await harness.produce(rejected_event, event_id=rejected_id)

        async def crm_skipped() -> bool:
            return metric(runtime, "sync_redeliveries_skipped_total", system_code="CRM") == 1

        await eventually(crm_skipped, "the redelivery to be skipped")
        assert await harness.attempts(rejected_id, "CRM") == [("rejected", 400)]
        assert metric(runtime, "sync_attempts_total", system_code="CRM", result="rejected") == 1
        assert metric(runtime, "sync_attempts_total", system_code="CRM", result="retryable") == len(tries)
        assert metric(runtime, "external_sync_transitions_total", system_code="CRM", status="failed") == 2
        assert harness.calls_to("CRM") == 0
        assert len(await harness.dead_letters()) == 2


async def _assert_dead_letter_messages(
    harness: ConnectorHarness, rejected_event: CustomerNameChanged, rejected_id: str, down_id: str
) -> None:
    """Each failure is also a message on the system's dead-letter topic: the original CloudEvent plus x-dlq-*."""
    messages = await harness.dlq_messages("CRM", 2)
    by_id = {dict(m.headers)["ce_id"].decode(): m for m in messages}
    assert set(by_id) == {rejected_id, down_id}
    rejected = by_id[rejected_id]
    headers = {key: value.decode() for key, value in rejected.headers}
    assert headers["x-dlq-system"] == "CRM"
    assert headers["x-dlq-reason"].startswith("rejected: HTTP 400")
    assert headers["x-dlq-attempts"] == "1"
    assert headers["ce_type"] == NAME_CHANGED_TYPE
    assert headers["ce_subject"] == "C300"
    assert headers["traceparent"].split("-")[1] == TRACE_ID
    assert rejected.key == b"C300"
    event = from_binary(KafkaMessage(headers=dict(rejected.headers), key=rejected.key, value=rejected.value))
    assert event["id"] == rejected_id  # the official SDK reads it
    assert event.data["newName"] == rejected_event.new_name
    assert event.data["profileVersion"] == 1
    late = {key: value.decode() for key, value in by_id[down_id].headers}
    assert late["x-dlq-reason"].startswith("deadline: delivery deadline passed. Last error: connection_error")


async def test_an_optional_count_cap_fails_after_that_many_retries(harness: ConnectorHarness) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 503, "count": 100})
    async with running_connector(harness.settings(max_retry_count=2, breaker_failure_threshold=1000)) as runtime:
        event_id = await harness.produce(name_changed("C302", 1))
        await eventually(harness.statuses_become(event_id, CRM_FAILED), "CRM failed after two retries")
        assert await harness.attempts(event_id, "CRM") == [("retryable", 503)] * 3
        crm = (await harness.records(event_id))["CRM"]
        assert (crm["retry_count"], crm["max_retry_count"]) == (2, 2)
        letters = await harness.dead_letters()
        assert [(x["reason"], x["attempts"]) for x in letters] == [("retries_exhausted", 3)]
        assert metric(runtime, "sync_dead_letters_total", system_code="CRM", reason="retries_exhausted") == 1


async def test_a_persisted_retry_resumes_after_a_restart(harness: ConnectorHarness) -> None:
    # CRM answers slower than the connector waits: each call times out (though the stub may apply it).
    await harness.inject_fault({"system": "CRM", "mode": "latency", "latencyMs": 1000})
    settings = harness.settings(http_timeout_s=0.3, claim_lease_s=1.0, backoff_max_s=0.4)
    async with running_connector(settings):
        event_id = await harness.produce(name_changed("C400", 1))
        crm_retrying = {"CRM": "retrying", "CMS": "success", "CSS": "success"}
        await eventually(harness.statuses_become(event_id, crm_retrying), "CRM retrying after a timeout")

        # The retry lives in the database, not on the partition: the message is already committed.
        async def crm_committed() -> bool:
            return await harness.committed_total(settings.group_id("CRM")) == 1

        await eventually(crm_committed, "the CRM offset committed while CRM is still retrying")
    crm = (await harness.records(event_id))["CRM"]
    assert crm["sync_status"] == "retrying"
    assert crm["next_attempt_at"] is not None
    assert "timeout" in crm["error_message"]
    attempts_before = len(await harness.attempts(event_id, "CRM"))

    await harness.clear_faults()
    async with running_connector(settings) as runtime:  # nothing left in Kafka: the retry scheduler resumes it
        await eventually(harness.statuses_become(event_id, dict.fromkeys(SYSTEMS, "success")), "CRM success")
        assert metric(runtime, "sync_retry_scheduler_claims_total", system_code="CRM") >= 1
        assert metric(runtime, "messages_undecodable_total", system_code="CRM") == 0
    attempts = await harness.attempts(event_id, "CRM")
    assert len(attempts) > attempts_before
    assert attempts[-1] == ("applied", 200)
    assert set(attempts[:-1]) == {("retryable", None)}
    assert (await harness.records(event_id))["CRM"]["retry_count"] == len(attempts) - 1 > 0  # across both runs
    # One effect per system: timed-out calls and the retry all carried the same Idempotency-Key.
    assert sorted(call.system for call in harness.stub.state.received()) == sorted(SYSTEMS)
    stats = await harness.stub_stats()
    assert {code: stats[code]["appliedKeys"] for code in SYSTEMS} == dict.fromkeys(SYSTEMS, 1)

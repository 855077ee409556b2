"""The sync-connector when an external system fails: retries, permanent failures, isolation, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.kit.kafka import KafkaSettings
from tests.connector_support import (
    SYSTEMS,
    ConnectorHarness,
    connector_harness,
    eventually,
    metric,
    name_changed,
    running_connector,
)

CRM_FAILED = {"CRM": "failed", "CMS": "success", "CSS": "success"}


@pytest.fixture
async def harness(database_url: str, kafka_settings: KafkaSettings, topic: str) -> AsyncIterator[ConnectorHarness]:
    async with connector_harness(database_url, kafka_settings, topic) as harness:
        yield harness


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
        assert metric(runtime, "external_sync_status_total", system_code="CRM", status="retrying") == 2


async def test_crm_400_fails_at_once_and_crm_down_fails_after_retries(harness: ConnectorHarness) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 400, "count": 1})
    async with running_connector(harness.settings()) as runtime:
        rejected_event = name_changed("C300", 1)
        rejected_id = await harness.produce(rejected_event)
        await eventually(harness.statuses_become(rejected_id, CRM_FAILED), "CRM failed on 400")
        crm = (await harness.records(rejected_id))["CRM"]
        assert (crm["retry_count"], crm["last_http_status"]) == (0, 400)
        assert "400" in crm["error_message"]
        assert await harness.attempts(rejected_id, "CRM") == [("rejected", 400)]

        await harness.inject_fault({"system": "CRM", "mode": "down"})
        down_id = await harness.produce(name_changed("C301", 1))
        await eventually(harness.statuses_become(down_id, CRM_FAILED), "CRM failed after retries")
        crm = (await harness.records(down_id))["CRM"]
        assert (crm["retry_count"], crm["last_http_status"], crm["completed_at"] is not None) == (3, None, True)
        assert "connection_error" in crm["error_message"]
        assert await harness.attempts(down_id, "CRM") == [("retryable", None)] * 4

        # A failed record is final for redeliveries: no new attempt (admin re-drive is a later feature).
        await harness.produce(rejected_event, event_id=rejected_id)

        async def crm_skipped() -> bool:
            return metric(runtime, "sync_redeliveries_skipped_total", system_code="CRM") == 1

        await eventually(crm_skipped, "the redelivery to be skipped")
        assert await harness.attempts(rejected_id, "CRM") == [("rejected", 400)]
        assert metric(runtime, "sync_attempts_total", system_code="CRM", result="rejected") == 1
        assert metric(runtime, "sync_attempts_total", system_code="CRM", result="retryable") == 4
        assert metric(runtime, "external_sync_status_total", system_code="CRM", status="failed") == 2
        assert harness.calls_to("CRM") == 0


async def test_shutdown_mid_retry_leaves_the_message_uncommitted_and_a_restart_resumes_it(
    harness: ConnectorHarness,
) -> None:
    # CRM answers slower than the connector waits: each call times out (though the stub may apply it).
    await harness.inject_fault({"system": "CRM", "mode": "latency", "latencyMs": 1000})
    settings = harness.settings(http_timeout_s=0.3, max_retry_count=20, backoff_max_s=0.4)
    async with running_connector(settings):
        event_id = await harness.produce(name_changed("C400", 1))
        crm_retrying = {"CRM": "retrying", "CMS": "success", "CSS": "success"}
        await eventually(harness.statuses_become(event_id, crm_retrying), "CRM retrying after a timeout")
    crm = (await harness.records(event_id))["CRM"]
    assert crm["sync_status"] == "retrying"
    assert "timeout" in crm["error_message"]
    assert await harness.committed_total(settings.group_id("CRM")) == 0
    assert await harness.committed_total(settings.group_id("CMS")) == 1

    await harness.clear_faults()
    async with running_connector(settings):  # same groups: resumes from the committed offsets
        await eventually(harness.statuses_become(event_id, dict.fromkeys(SYSTEMS, "success")), "CRM success")
    attempts = await harness.attempts(event_id, "CRM")
    assert attempts[-1] == ("applied", 200)
    assert set(attempts[:-1]) == {("retryable", None)}
    assert (await harness.records(event_id))["CRM"]["retry_count"] == len(attempts) - 1 > 0  # across both runs
    # One effect per system: timed-out calls and the retry all carried the same Idempotency-Key.
    assert sorted(call.system for call in harness.stub.state.received()) == sorted(SYSTEMS)
    assert await harness.committed_total(settings.group_id("CRM")) == 1

"""The console against a real sync-connector (in-process, its HTTP API on a real socket): the
overview's counts, a failed sync found, inspected and retried to success, a bulk retry, the
profile's sync status; the connector audits the person signed in to the console."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from libs.kit.tokens import Role
from services.sync_connector.runtime import ConnectorRuntime
from tests.connector_support import ConnectorHarness, name_changed, running_connector
from tests.console_support import confirm_redirect, create_customer, served_console_client
from tests.polling import eventually

CRM_FAILED = {"CRM": "failed", "CMS": "success", "CSS": "success"}
ALL_SUCCESS = {"CRM": "success", "CMS": "success", "CSS": "success"}


@pytest.fixture
async def connector(harness: ConnectorHarness) -> AsyncIterator[ConnectorRuntime]:
    async with running_connector(harness.settings()) as runtime:
        yield runtime


async def _failed_crm_event(harness: ConnectorHarness, customer_id: str) -> str:
    """An event CRM rejects (422 from the stub's fault injection) while CMS and CSS apply it."""
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 422, "customerId": customer_id})
    event_id = await harness.produce(name_changed(customer_id, 2))
    await eventually(harness.statuses_become(event_id, CRM_FAILED), "CRM failed, CMS and CSS applied")
    return event_id


async def test_find_a_failed_sync_retry_it_and_see_it_succeed(
    database_url: str, harness: ConnectorHarness, connector: ConnectorRuntime
) -> None:
    event_id = await _failed_crm_event(harness, "C-SYNC-1")
    record_id = (await harness.records(event_id))["CRM"]["id"]
    async with served_console_client(
        database_url, Role.ADMIN, subject="ada", PROFILE_CONNECTOR_URL=connector.http_url
    ) as client:
        overview = await client.get("/console/")
        assert overview.status_code == 200
        assert '<tr data-system="CRM">' in overview.text
        crm_row = overview.text.split('<tr data-system="CRM">')[1].split("</tr>")[0]
        assert '/console/sync?system=CRM&amp;status=failed">1</a>' in crm_row
        assert "breaker-closed" in crm_row

        failed = await client.get("/console/sync?system=CRM&status=failed")
        assert f'data-record="{record_id}" data-status="failed"' in failed.text
        record = await client.get(f"/console/sync/{record_id}")
        assert "HTTP 422" in record.text
        assert '<span class="badge status-failed" id="record-status">failed</span>' in record.text

        await harness.clear_faults()
        await confirm_redirect(
            client,
            f"/console/sync/{record_id}/retry",
            f"Retry sync record {record_id}",
            f"/console/sync/{record_id}?notice=retried",
        )
        await eventually(harness.statuses_become(event_id, ALL_SUCCESS), "the retried record applied")
        after = await client.get(f"/console/sync/{record_id}")
        assert '<span class="badge status-success" id="record-status">success</span>' in after.text
        assert after.text.count("<td>rejected</td>") == 1
        assert "<td>applied</td>" in after.text
    actor = await harness.db.fetchval("SELECT actor FROM sync.admin_actions WHERE record_id = $1", record_id)
    assert actor == "ada"


async def test_bulk_retry_says_how_many_and_profile_shows_every_system(
    database_url: str, harness: ConnectorHarness, connector: ConnectorRuntime
) -> None:
    first = await _failed_crm_event(harness, "C-SYNC-2")
    second = await _failed_crm_event(harness, "C-SYNC-3")
    async with served_console_client(
        database_url, Role.ADMIN, subject="ada", PROFILE_CONNECTOR_URL=connector.http_url
    ) as client:
        await create_customer(client, "C-SYNC-2")
        profile = await client.get("/console/customers/C-SYNC-2")
        crm = profile.text.split('<tr data-system="CRM">')[1].split("</tr>")[0]
        assert "status-failed" in crm
        assert "status-success" in profile.text.split('<tr data-system="CSS">')[1].split("</tr>")[0]

        await harness.clear_faults()
        retried_many = "/console/sync?system=CRM&notice=retried-many&n=2"
        await confirm_redirect(
            client, "/console/sync/retry-failed?system=CRM", "Retry 2 failed CRM records?", retried_many
        )
        for event_id in (first, second):
            await eventually(harness.statuses_become(event_id, ALL_SUCCESS), "both retried records applied")
        notice = await client.get(retried_many)
        assert "Retry scheduled for 2 failed sync records." in notice.text

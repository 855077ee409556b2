"""Per-customer order at each system with retries off the partition (invariants 4 and 5)."""

from __future__ import annotations

from libs.kit.tokens import Role
from tests.auth_support import bearer
from tests.connector_support import SYSTEMS, ConnectorHarness, metric, name_changed, running_connector
from tests.polling import eventually


async def test_a_retrying_event_holds_only_its_customer_and_a_rejected_one_holds_nobody(
    harness: ConnectorHarness,
) -> None:
    # CRM fails every call for C500 (until cleared) and rejects C600's first call.
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 503, "customerId": "C500"})
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 400, "count": 1, "customerId": "C600"})
    async with running_connector(harness.settings()) as runtime:
        # All on one partition, so "the partition moved on" is observable.
        retrying_v1 = await harness.produce(name_changed("C500", 1), partition=0)
        parked_v2 = await harness.produce(name_changed("C500", 2, new_name="王五"), partition=0)
        rejected_v1 = await harness.produce(name_changed("C600", 1), partition=0)
        newer_v2 = await harness.produce(name_changed("C600", 2, new_name="赵六"), partition=0)
        other = await harness.produce(name_changed("C501", 1), partition=0)

        # Later messages of the partition went through while C500 v1 keeps retrying at CRM.
        await eventually(harness.statuses_become(other, dict.fromkeys(SYSTEMS, "success")), "C501 delivered")
        await eventually(harness.statuses_become(newer_v2, dict.fromkeys(SYSTEMS, "success")), "C600 v2 delivered")
        # C600 v1 was rejected (failed, dead-lettered): it does not hold back C600 v2.
        assert (await harness.statuses(rejected_v1))["CRM"] == "failed"
        assert harness.applied_versions("CRM", "C600") == [2]

        # C500 v2 waits behind v1 at CRM only; CMS and CSS have both versions already.
        v1_crm, v2_crm = (await harness.records(retrying_v1))["CRM"], (await harness.records(parked_v2))["CRM"]
        assert v1_crm["sync_status"] == "retrying"
        assert (v2_crm["sync_status"], v2_crm["blocked_by_record_id"]) == ("pending", v1_crm["id"])
        assert await harness.attempts(parked_v2, "CRM") == []
        assert harness.applied_versions("CRM", "C500") == []
        for code in ("CMS", "CSS"):
            assert harness.applied_versions(code, "C500") == [1, 2]
        assert metric(runtime, "sync_deferred_total", system_code="CRM", reason="parked") >= 1

        await harness.clear_faults()
        await eventually(harness.statuses_become(parked_v2, dict.fromkeys(SYSTEMS, "success")), "C500 v2 delivered")
        assert (await harness.statuses(retrying_v1))["CRM"] == "success"
        assert harness.applied_versions("CRM", "C500") == [1, 2]  # in commit order

        # Re-driving the old rejected event must not put the older name back: it is superseded, never sent.
        record_id = (await harness.records(rejected_v1))["CRM"]["id"]
        async with harness.http.post(
            f"{runtime.http_url}/v1/sync-records/{record_id}/retry", headers=bearer(Role.ADMIN, subject="ops")
        ) as response:
            assert response.status == 202
        await eventually(
            harness.statuses_become(rejected_v1, {"CRM": "superseded", "CMS": "success", "CSS": "success"}),
            "the stale re-drive superseded",
        )
        assert await harness.attempts(rejected_v1, "CRM") == [("rejected", 400)]
        assert harness.applied_versions("CRM", "C600") == [2]
    stats = await harness.stub_stats()
    assert stats["CRM"]["appliedKeys"] == 4  # C500 v1, v2; C600 v2; C501

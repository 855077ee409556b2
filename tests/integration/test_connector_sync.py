"""The sync-connector's normal path: real Kafka, real PostgreSQL, the stub systems over real HTTP."""

from __future__ import annotations

import msgspec

from tests.connector_support import SYSTEMS, ConnectorHarness, all_systems, metric, name_changed, running_connector
from tests.polling import eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_happy_path_redelivery_stale_event_and_undecodable_message(harness: ConnectorHarness) -> None:
    settings = harness.settings()
    newer, stale = name_changed("C100", 2, new_name="王五"), name_changed("C100", 1)
    async with running_connector(settings) as runtime:
        # Same key, so one partition: the undecodable message sits in front of the others.
        await harness.produce(newer, value=b"\xffnot json")
        newer_id = await harness.produce(newer, traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")
        await harness.produce(newer, event_id=newer_id)  # redelivery of the same event
        stale_id = await harness.produce(stale)
        # In-order processing: once the stale event is settled, everything before it is too.
        await eventually(harness.statuses_become(stale_id, all_systems("superseded")), "the stale event superseded")

        records = await harness.records(newer_id)
        assert {code: row["sync_status"] for code, row in records.items()} == all_systems("success")
        for code, row in records.items():
            assert (row["retry_count"], row["last_http_status"], row["profile_version"]) == (0, 200, 2)
            assert row["completed_at"] is not None
            assert msgspec.json.decode(row["sync_data"])["customerName"] == "王五"
            assert await harness.attempts(newer_id, code) == [("applied", 200)]
            assert await harness.attempts(stale_id, code) == []

        calls = harness.stub.state.received()
        assert sorted(call.system for call in calls) == sorted(SYSTEMS)  # exactly one call per system
        for call in calls:
            assert call.status == 200  # the stub verified the X-Signature with each system's secret
            assert call.headers["Idempotency-Key"] == newer_id
            assert call.headers["X-Signature"].startswith("sha256=")
            assert call.headers["Content-Type"] == "application/json"
            assert call.headers["traceparent"].split("-")[1] == TRACE_ID
            assert (call.body["eventId"], call.body["customerName"], call.body["profileVersion"]) == (
                newer_id,
                "王五",
                2,
            )
        state = await harness.db.fetch("SELECT system_code, applied_version FROM sync.customer_sync_state")
        assert {row["system_code"]: row["applied_version"] for row in state} == dict.fromkeys(SYSTEMS, 2)

        for code in SYSTEMS:
            assert metric(runtime, "messages_undecodable_total", system_code=code) == 1
            assert metric(runtime, "sync_redeliveries_skipped_total", system_code=code) == 1
            assert metric(runtime, "external_sync_transitions_total", system_code=code, status="success") == 1
            assert metric(runtime, "external_sync_transitions_total", system_code=code, status="superseded") == 1

        http = harness.http
        for path in ("/health", "/ready"):
            async with http.get(runtime.http_url + path) as response:
                assert response.status == 200, path
        async with http.get(runtime.http_url + "/metrics") as response:
            assert 'sync_attempts_total{result="applied",system_code="CRM"} 1.0' in await response.text()
        async with http.get(runtime.http_url + "/v1/sync-records", params={"customerId": "C100"}) as response:
            page = await response.json()
        listed = page["items"]
        assert page["nextCursor"] is None
        assert all(record["syncData"]["customerId"] == "C100" for record in listed)
        assert sorted((record["systemCode"], record["syncStatus"]) for record in listed) == sorted(
            [(code, "success") for code in SYSTEMS] + [(code, "superseded") for code in SYSTEMS]
        )
        async with http.get(runtime.http_url + "/v1/sync-records", params={"limit": "0"}) as response:
            assert response.status == 422
            assert response.content_type == "application/problem+json"

    # Shutdown committed every processed message: a restart starts after the stale event.
    for code in SYSTEMS:
        assert await harness.committed_total(settings.group_id(code)) == 4, code

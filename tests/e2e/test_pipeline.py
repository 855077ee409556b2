"""The whole pipeline on real processes: HTTP approval -> one transaction -> outbox -> Kafka -> CRM/CMS/CSS."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from tests.e2e.conftest import SYSTEMS, RunningSystem, eventually
from tests.notification_support import create_customer


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    messages: list[Any] = []
    try:

        async def probe() -> list[Any] | None:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                messages.extend(records)
            return messages if len(messages) >= expected else None

        return await eventually(probe, timeout, f"{expected} messages on {topic}")
    finally:
        await consumer.stop()


async def test_approval_reaches_every_external_system_once(
    running_system: RunningSystem, http: httpx.AsyncClient, database_url: str, kafka_bootstrap: str, topic: str
) -> None:
    api = running_system.profile_url
    await create_customer(api, "E2E001", contactPhone="13800138000")
    submitted = await http.post(
        f"{api}/v1/name-change-applications", json={"customerId": "E2E001", "newName": "李四", "reason": "过户"}
    )
    assert submitted.status_code == 201, submitted.text
    application_id = submitted.json()["applicationId"]

    approved = await http.post(
        f"{api}/v1/name-change-applications/{application_id}/decision",
        json={"decision": "approved", "auditorId": "auditor-7", "comment": "材料齐全"},
    )

    assert approved.status_code == 200, approved.text
    result = approved.json()
    event_id = result["eventId"]

    async def all_systems_received() -> list[dict[str, Any]] | None:
        calls: list[dict[str, Any]] = (await http.get(f"{running_system.stubs_url}/_received")).json()
        return calls if {c["system"] for c in calls} == set(SYSTEMS) else None

    await eventually(all_systems_received, 30, "all three external systems to receive the change")

    async def three_successes() -> list[dict[str, Any]] | None:
        response = await http.get(f"{running_system.connector_url}/v1/sync-records", params={"customerId": "E2E001"})
        records: list[dict[str, Any]] = response.json()["items"]
        statuses = [r["syncStatus"] for r in records]
        return records if statuses.count("success") == len(SYSTEMS) else None

    await eventually(three_successes, 30, "three success sync records")
    calls = (await http.get(f"{running_system.stubs_url}/_received")).json()
    assert sorted(c["system"] for c in calls) == sorted(SYSTEMS), "each system exactly one call"
    for call in calls:
        assert call["path"] == SYSTEMS[call["system"]]
        assert call["body"]["customerName"] == "李四"
        assert call["body"]["profileVersion"] == 2
        headers = {k.lower(): v for k, v in call["headers"].items()}
        assert headers["idempotency-key"] == event_id
        assert headers["traceparent"].startswith("00-")
        assert headers["x-signature"].startswith("sha256=")

    db = await asyncpg.connect(database_url)
    try:
        assert await db.fetchval("SELECT count(*) FROM sync.external_sync_records WHERE sync_status='success'") == 3
        assert await db.fetchval("SELECT count(*) FROM profile.name_change_history WHERE customer_id='E2E001'") == 1
        assert (
            await db.fetchval(
                "SELECT status FROM profile.name_change_applications WHERE application_id=$1", application_id
            )
            == "completed"
        )
        outbox = await db.fetchrow("SELECT status, published_partition, published_offset FROM profile.outbox")
        assert outbox["status"] == "published"
    finally:
        await db.close()
    history = (await http.get(f"{api}/v1/customers/E2E001/name-history")).json()
    assert [(h["oldName"], h["newName"]) for h in history] == [("张三", "李四")]

    (message,) = await read_topic(kafka_bootstrap, topic, expected=1)
    assert message.partition == outbox["published_partition"]
    assert message.offset == outbox["published_offset"]
    event = from_binary_event(KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value))
    assert event.get_id() == event_id
    assert event.get_type() == "customer.profile.name-changed.v1"
    assert event.get_subject() == "E2E001"
    data = event.get_data()
    assert isinstance(data, dict)
    assert (data["newName"], data["oldName"], data["profileVersion"]) == ("李四", "张三", 2)
    assert json.loads(message.value)["applicationId"] == application_id

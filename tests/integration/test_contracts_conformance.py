"""Every message the real pipeline produces conforms to the published contract.

Name changes go through the profile service's HTTP API (one transaction writes the outbox
row), the real relay publishes them to a real Kafka-protocol broker, and each message read
back must validate against the committed JSON Schemas and be read by the official
``cloudevents`` SDK.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from litestar.testing import AsyncTestClient

import contracts
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE
from libs.kit.kafka import KafkaSettings
from tests.relay_support import Received, collecting, random_traceparent, relay_settings, running_relay, wait_until

SCHEMAS = Path(contracts.__file__).parent / "schemas"
CUSTOMERS = {"CT001": ["李四", "王五"], "CT002": ['O\'Brien "Junior"', "Zoë 😀"], "CT003": ["赵六", "钱七"]}


def validator(file_name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / file_name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


async def change_names(client: AsyncTestClient[Any]) -> dict[str, str]:
    """Create the customers and approve their name changes; returns event id -> traceparent sent."""
    sent: dict[str, str] = {}
    for customer_id, names in CUSTOMERS.items():
        created = await client.post(
            "/v1/customers",
            json={
                "customerId": customer_id,
                "customerName": "张三",
                "accountType": "residential",
                "contactPhone": "+86 138 0013 8000",
                "contactEmail": "zhang@example.com",
            },
        )
        assert created.status_code == 201, created.text
        for new_name in names:
            submitted = await client.post(
                "/v1/name-change-applications",
                json={"customerId": customer_id, "newName": new_name, "reason": "更名 / rename"},
            )
            assert submitted.status_code == 201, submitted.text
            traceparent = random_traceparent()
            decided = await client.post(
                f"/v1/name-change-applications/{submitted.json()['applicationId']}/decision",
                json={"decision": "approved", "auditorId": "auditor-1", "comment": "ok"},
                headers={"traceparent": traceparent},
            )
            assert decided.status_code in (200, 201), decided.text
            sent[decided.json()["eventId"]] = traceparent
    return sent


def assert_conforms(message: Received, traceparent_sent: str) -> None:
    payload = json.loads(message.value)
    validator("customer-name-changed.v1.schema.json").validate(payload)
    validator("customer-profile-event-headers.v1.schema.json").validate(message.headers)
    assert message.key == message.headers["ce_subject"] == payload["customerId"]
    # The stored trace context continues the trace of the approval request.
    assert message.headers["traceparent"].split("-")[1] == traceparent_sent.split("-")[1]

    event = from_binary_event(KafkaMessage(headers=message.raw_headers, key=message.key.encode(), value=message.value))
    assert event.get_id() == message.event_id
    assert event.get_type() == NAME_CHANGED_TYPE
    assert event.get_source() == EVENT_SOURCE
    assert event.get_subject() == payload["customerId"]
    assert event.get_time() is not None
    assert event.get_data() == payload


async def test_every_relayed_message_validates_against_the_schemas_and_reads_as_a_cloudevent(
    client: AsyncTestClient[Any], database_url: str, kafka_settings: KafkaSettings, topic: str
) -> None:
    sent = await change_names(client)
    expected = sum(len(names) for names in CUSTOMERS.values())
    assert len(sent) == expected

    async with (
        collecting(kafka_settings, topic) as seen,
        running_relay(database_url, kafka_settings, relay_settings(topic, poll_interval_s=0.2)),
    ):
        await wait_until(
            lambda: len(seen.ids()) >= expected,
            timeout=30,
            message=lambda: f"{len(seen.ids())} of {expected} events consumed",
        )

    assert seen.ids() == set(sent)
    for message in seen.messages:
        assert_conforms(message, sent[message.event_id])
    for customer_id, names in CUSTOMERS.items():
        mine = sorted((m for m in seen.messages if m.key == customer_id), key=lambda m: m.offset)
        payloads = [json.loads(m.value) for m in mine]
        assert [(p["newName"], p["profileVersion"]) for p in payloads] == list(zip(names, (2, 3), strict=True))

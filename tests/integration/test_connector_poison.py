"""Messages the connector can never process are dead-lettered alone; their partition goes on (invariant 5).

One partition holds good events of several customers around two poison messages: one the handler can
never process (a name with a NUL: it decodes, but PostgreSQL refuses it in the record's JSON every
time, SQLSTATE 22P05) and one that cannot be decoded. Every system records both as unprocessable,
publishes them to its dead-letter topic as they were read, and delivers every other event.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from contracts.events import encode_event
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from tests.connector_support import (
    SYSTEMS,
    ConnectorHarness,
    all_systems,
    connector_harness,
    metric,
    name_changed,
    running_connector,
)
from tests.polling import eventually

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture
async def harness(database_url: str, kafka_settings: KafkaSettings) -> AsyncIterator[ConnectorHarness]:
    one_partition = msgspec.structs.replace(kafka_settings, topic_partitions=1)
    topic = f"customer-profile.v1.test-{uuid.uuid4().hex[:10]}"
    await ensure_topic(one_partition, topic)
    async with connector_harness(database_url, one_partition, topic) as harness:
        yield harness


async def test_a_message_the_connector_can_never_process_is_dead_lettered_alone(harness: ConnectorHarness) -> None:
    settings = harness.settings()
    with capture_logs() as logs:
        async with running_connector(settings) as runtime:
            first = await harness.produce(name_changed("C-A", 1))
            poison = name_changed("C-P", 1, new_name="坏\x00名")
            poison_id = await harness.produce(poison, traceparent=TRACEPARENT)
            undecodable_id = await harness.produce(name_changed("C-U", 1), value=b"\xffnot json")
            after = [await harness.produce(name_changed(customer, 1)) for customer in ("C-B", "C-C")]
            # The poison's customer is not blocked either: its next event is delivered.
            fixed = await harness.produce(name_changed("C-P", 2, new_name="好名"))

            for event_id in (first, *after, fixed):
                await eventually(harness.statuses_become(event_id, all_systems("success")), f"{event_id} delivered")
            assert await harness.statuses(poison_id) == {}  # never recorded: its record cannot be written
            for customer, version in (("C-A", 1), ("C-B", 1), ("C-C", 1), ("C-P", 2)):
                for system in SYSTEMS:
                    assert harness.applied_versions(system, customer) == [version], (system, customer)

            rows = await _unprocessable(harness)
            assert sorted((r["system_code"], r["event_id"], r["reason"]) for r in rows) == sorted(
                [(code, poison_id, "handler_failed") for code in SYSTEMS]
                + [(code, undecodable_id, "undecodable") for code in SYSTEMS]
            )
            for row in rows:
                assert (row["topic"], row["kafka_partition"]) == (harness.topic, 0)
                if row["reason"] == "handler_failed":
                    assert row["failures"] == settings.unprocessable_after_failures
                    assert "UntranslatableCharacter" in row["error"] or "22P05" in row["error"], row["error"]
                    assert row["trace_id"] == TRACE_ID
                    assert row["customer_id"] == "C-P"
                    assert bytes(row["message_value"]) == encode_event(poison)
                else:
                    assert row["error"].startswith("bad event value")
                    assert bytes(row["message_value"]) == b"\xffnot json"
                for code in SYSTEMS:
                    assert metric(runtime, "messages_unprocessable_total", system_code=code, reason=row["reason"]) == 1

            # Each system's dead-letter topic gets both, as they were read, plus x-dlq-*.
            for code in SYSTEMS:
                messages = await harness.dlq_messages(code, 2)
                by_id = {dict(m.headers)["ce_id"].decode(): m for m in messages}
                assert set(by_id) == {poison_id, undecodable_id}
                dead = by_id[poison_id]
                headers = {name: value.decode() for name, value in dead.headers}
                assert dead.key == b"C-P"
                assert dead.value == encode_event(poison)
                assert headers["traceparent"] == TRACEPARENT
                assert headers["x-dlq-system"] == code
                assert headers["x-dlq-reason"].startswith("handler_failed: ")
                assert headers["x-dlq-attempts"] == str(settings.unprocessable_after_failures)
                assert headers["x-dlq-source"] == f"{harness.topic}/0/1"
                assert by_id[undecodable_id].value == b"\xffnot json"
                undecodable_headers = {name: value.decode() for name, value in by_id[undecodable_id].headers}
                assert undecodable_headers["x-dlq-reason"].startswith("undecodable: bad event value")

            async def published() -> bool:
                return all(r["published_at"] is not None for r in await _unprocessable(harness))

            await eventually(published, "unprocessable messages marked published")
            for code in SYSTEMS:
                assert metric(runtime, "message_processing_errors_total", system_code=code, kind="database") == 0
        # The partition went on: everything up to the last message is committed, the poison included.
        for code in SYSTEMS:
            assert await harness.committed_total(settings.group_id(code)) == 6, code

    lines = [line for line in logs if line["event"] == "message_unprocessable"]
    assert sorted((line["system_code"], line["reason"]) for line in lines) == sorted(
        [(code, "handler_failed") for code in SYSTEMS] + [(code, "undecodable") for code in SYSTEMS]
    )
    assert {line["trace_id"] for line in lines if line["reason"] == "handler_failed"} == {TRACE_ID}
    assert all(line["log_level"] == "error" for line in lines)


async def _unprocessable(harness: ConnectorHarness) -> list[dict[str, Any]]:
    rows = await harness.db.fetch("SELECT * FROM sync.unprocessable_messages ORDER BY id")
    return [dict(row) for row in rows]

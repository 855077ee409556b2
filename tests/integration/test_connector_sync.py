"""The sync-connector end to end: real Kafka, real PostgreSQL, the stub systems over real HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry.sdk.trace import TracerProvider

from contracts.events import NAME_CHANGED_TYPE, CustomerNameChanged, encode_event
from libs.kit.db import DatabaseSettings
from libs.kit.kafka import KafkaSettings
from services.stub_externals.app import RunningStub, start_stub_server
from services.sync_connector.runtime import ConnectorRuntime
from services.sync_connector.settings import ConnectorSettings

T = TypeVar("T")
SYSTEMS = ("CRM", "CMS", "CSS")
SECRETS = {"CRM": "crm-secret", "CMS": "cms-secret", "CSS": "css-secret"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def eventually(check: Callable[[], Awaitable[T]], what: str, timeout: float = 20.0) -> T:
    """Poll ``check`` until it returns something truthy, bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {result!r})")
        await asyncio.sleep(0.05)


@pytest.fixture
async def stub() -> AsyncIterator[RunningStub]:
    async with await start_stub_server(secrets=SECRETS) as server:
        yield server


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@dataclass
class Harness:
    database_url: str
    kafka: KafkaSettings
    topic: str
    stub: RunningStub
    producer: AIOKafkaProducer
    db: asyncpg.Connection

    def settings(self, **overrides: Any) -> ConnectorSettings:
        return _settings(self.database_url, self.kafka, self.topic, self.stub, **overrides)


@pytest.fixture
def harness(
    *,
    database_url: str,
    kafka_settings: KafkaSettings,
    topic: str,
    stub: RunningStub,
    producer: AIOKafkaProducer,
    db: asyncpg.Connection,
) -> Harness:
    return Harness(database_url, kafka_settings, topic, stub, producer, db)


def _settings(
    database_url: str, kafka: KafkaSettings, topic: str, stub: RunningStub, **overrides: Any
) -> ConnectorSettings:
    settings = ConnectorSettings(
        database=DatabaseSettings(url=database_url, pool_size=5),
        # Short group timeouts: tansu waits them out when a group's members change (see the restart test).
        kafka=msgspec.structs.replace(
            kafka, session_timeout_ms=2_000, heartbeat_interval_ms=250, rebalance_timeout_ms=2_000
        ),
        topic=topic,
        group_prefix=f"sync-connector-test-{uuid.uuid4().hex[:8]}",
        http_port=0,
        crm_url=stub.url,
        cms_url=stub.url,
        css_url=stub.url,
        crm_secret=SECRETS["CRM"],
        cms_secret=SECRETS["CMS"],
        css_secret=SECRETS["CSS"],
        max_retry_count=3,
        backoff_base_s=0.05,
        backoff_max_s=0.2,
        http_timeout_s=5.0,
        shutdown_grace_s=5.0,
    )
    return msgspec.structs.replace(settings, **overrides)


@asynccontextmanager
async def running_connector(settings: ConnectorSettings) -> AsyncIterator[ConnectorRuntime]:
    async with ConnectorRuntime(settings, tracer_provider=TracerProvider()) as runtime:
        # Produce only once every group owns its partitions, so timing assertions compare systems, not joins.
        async def assigned() -> bool:
            return runtime.partitions_assigned

        await eventually(assigned, "all three consumer groups to be assigned", timeout=30)
        yield runtime


def _event(customer_id: str, version: int, new_name: str = "李四") -> CustomerNameChanged:
    return CustomerNameChanged(
        customer_id=customer_id,
        application_id=f"APP-{customer_id}-{version}",
        old_name="张三",
        new_name=new_name,
        profile_version=version,
        reason="更名",
        changed_at=datetime.now(UTC),
    )


async def _produce(
    producer: AIOKafkaProducer,
    topic: str,
    event: CustomerNameChanged,
    *,
    event_id: str | None = None,
    value: bytes | None = None,
    traceparent: str | None = None,
) -> str:
    event_id = event_id or str(uuid.uuid4())
    headers = {
        "ce_specversion": "1.0",
        "ce_id": event_id,
        "ce_source": "urn:test",
        "ce_type": NAME_CHANGED_TYPE,
        "ce_time": "2024-05-01T08:30:00Z",
        "ce_subject": event.customer_id,
        "content-type": "application/json",
    }
    if traceparent:
        headers["traceparent"] = traceparent
    await producer.send_and_wait(
        topic,
        value if value is not None else encode_event(event),
        key=event.customer_id.encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )
    return event_id


async def _records(db: asyncpg.Connection, event_id: str) -> dict[str, asyncpg.Record]:
    rows = await db.fetch("SELECT * FROM sync.external_sync_records WHERE event_id = $1", uuid.UUID(event_id))
    return {row["system_code"]: row for row in rows}


async def _statuses(db: asyncpg.Connection, event_id: str) -> dict[str, str]:
    return {code: row["sync_status"] for code, row in (await _records(db, event_id)).items()}


def _all(status: str, *systems: str) -> dict[str, str]:
    return dict.fromkeys(systems or SYSTEMS, status)


async def _attempts(db: asyncpg.Connection, event_id: str, system: str) -> list[tuple[str, int | None]]:
    rows = await db.fetch(
        "SELECT a.outcome, a.http_status FROM sync.external_sync_attempts a "
        "JOIN sync.external_sync_records r ON r.id = a.record_id "
        "WHERE r.event_id = $1 AND r.system_code = $2 ORDER BY a.attempt_no",
        uuid.UUID(event_id),
        system,
    )
    return [(row["outcome"], row["http_status"]) for row in rows]


async def _inject_fault(stub: RunningStub, fault: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http, http.post(stub.url + "/_faults", json=fault) as response:
        assert response.status == 201


def _metric(runtime: ConnectorRuntime, name: str, **labels: str) -> float:
    return runtime.registry.get_sample_value(name, labels) or 0.0


async def test_happy_path_redelivery_stale_event_and_undecodable_message(
    harness: Harness,
) -> None:
    db, stub, producer, topic = harness.db, harness.stub, harness.producer, harness.topic
    settings = harness.settings()
    newer, stale = _event("C100", 2, new_name="王五"), _event("C100", 1)
    async with running_connector(settings) as runtime:
        # Same key, so one partition: the undecodable message sits in front of the others.
        await _produce(producer, topic, newer, value=b"\xffnot json")
        newer_id = await _produce(producer, topic, newer, traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")
        await _produce(producer, topic, newer, event_id=newer_id)  # redelivery of the same event
        stale_id = await _produce(producer, topic, stale)
        # In-order processing: once the stale event is settled, everything before it is too.
        await eventually(lambda: _has_statuses(db, stale_id, _all("superseded")), "the stale event superseded")

        records = await _records(db, newer_id)
        assert {code: row["sync_status"] for code, row in records.items()} == _all("success")
        for code, row in records.items():
            assert (row["retry_count"], row["last_http_status"], row["profile_version"]) == (0, 200, 2)
            assert row["completed_at"] is not None
            assert msgspec.json.decode(row["sync_data"])["customerName"] == "王五"
            assert await _attempts(db, newer_id, code) == [("applied", 200)]
        for code in SYSTEMS:
            assert await _attempts(db, stale_id, code) == []

        calls = stub.state.received()
        assert sorted(call.system for call in calls) == sorted(SYSTEMS)  # exactly one call per system
        for call in calls:
            assert call.status == 200  # the stub verified the X-Signature with each system's secret
            assert call.headers["Idempotency-Key"] == newer_id
            assert call.headers["X-Signature"].startswith("sha256=")
            assert call.headers["Content-Type"] == "application/json"
            assert call.headers["traceparent"].split("-")[1] == TRACE_ID
            assert call.body["customerName"] == "王五"
            assert call.body["profileVersion"] == 2
            assert call.body["eventId"] == newer_id
        state = await db.fetch("SELECT system_code, applied_version FROM sync.customer_sync_state")
        assert {row["system_code"]: row["applied_version"] for row in state} == dict.fromkeys(SYSTEMS, 2)

        for code in SYSTEMS:
            assert _metric(runtime, "messages_undecodable_total", system_code=code) == 1
            assert _metric(runtime, "sync_redeliveries_skipped_total", system_code=code) == 1
            assert _metric(runtime, "external_sync_status_total", system_code=code, status="success") == 1
            assert _metric(runtime, "external_sync_status_total", system_code=code, status="superseded") == 1

        async with aiohttp.ClientSession() as http:
            for path in ("/health", "/ready"):
                async with http.get(runtime.http_url + path) as response:
                    assert response.status == 200, path
            async with http.get(runtime.http_url + "/metrics") as response:
                assert 'sync_attempts_total{result="applied",system_code="CRM"} 1.0' in await response.text()
            async with http.get(runtime.http_url + "/v1/sync-records", params={"customerId": "C100"}) as response:
                listed = await response.json()
            assert all(r["syncData"]["customerId"] == "C100" for r in listed)
            assert sorted((r["systemCode"], r["syncStatus"]) for r in listed) == sorted(
                [(code, "success") for code in SYSTEMS] + [(code, "superseded") for code in SYSTEMS]
            )
            async with http.get(runtime.http_url + "/v1/sync-records") as response:
                assert response.status == 422
                assert response.content_type == "application/problem+json"

    # Shutdown committed every processed message: a restart starts after the stale event.
    for code in SYSTEMS:
        assert await _committed_total(harness.kafka, topic, settings.group_id(code)) == 4, code


async def _committed_total(kafka: KafkaSettings, topic: str, group_id: str) -> int:
    """Sum of the group's committed offsets (the admin client's OffsetFetch does not work against tansu)."""
    reader = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=group_id, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(kafka.topic_partitions)]
        reader.assign(partitions)
        return sum([await reader.committed(tp) or 0 for tp in partitions])
    finally:
        await reader.stop()


async def test_crm_retries_503s_while_cms_and_css_do_not_wait(
    harness: Harness,
) -> None:
    db, stub, producer, topic = harness.db, harness.stub, harness.producer, harness.topic
    # Two 503s, then a slow success: CMS and CSS must finish while CRM is still at it.
    await _inject_fault(stub, {"system": "CRM", "mode": "status", "status": 503, "count": 2})
    await _inject_fault(stub, {"system": "CRM", "mode": "latency", "latencyMs": 2000, "count": 1})
    async with running_connector(harness.settings()) as runtime:
        event_id = await _produce(producer, topic, _event("C200", 1))

        async def others_done_while_crm_retries() -> dict[str, str]:
            statuses = await _statuses(db, event_id)
            return statuses if statuses.get("CMS") == statuses.get("CSS") == "success" else {}

        statuses = await eventually(others_done_while_crm_retries, "CMS and CSS success")
        assert statuses["CRM"] in {"pending", "retrying"}

        async def crm_waiting_on_its_third_attempt() -> asyncpg.Record | None:
            row = (await _records(db, event_id))["CRM"]
            return row if row["sync_status"] == "retrying" and row["retry_count"] == 2 else None

        retrying = await eventually(crm_waiting_on_its_third_attempt, "CRM retrying a second time")
        assert retrying is not None
        assert retrying["next_attempt_at"] is not None
        assert retrying["last_http_status"] == 503

        await eventually(lambda: _succeeded(db, event_id, "CRM"), "CRM success")
        crm = (await _records(db, event_id))["CRM"]
        assert (crm["retry_count"], crm["last_http_status"], crm["next_attempt_at"]) == (2, 200, None)
        assert crm["error_message"] is None
        assert await _attempts(db, event_id, "CRM") == [("retryable", 503), ("retryable", 503), ("applied", 200)]
        assert [call.system for call in stub.state.received()].count("CRM") == 1
        assert _metric(runtime, "sync_attempts_total", system_code="CRM", result="retryable") == 2
        assert _metric(runtime, "external_sync_status_total", system_code="CRM", status="retrying") == 2


async def _succeeded(db: asyncpg.Connection, event_id: str, system: str) -> bool:
    return (await _statuses(db, event_id)).get(system) == "success"


async def test_crm_400_fails_at_once_and_crm_down_fails_after_retries(
    harness: Harness,
) -> None:
    db, stub, producer, topic = harness.db, harness.stub, harness.producer, harness.topic
    await _inject_fault(stub, {"system": "CRM", "mode": "status", "status": 400, "count": 1})
    async with running_connector(harness.settings()) as runtime:
        rejected_event = _event("C300", 1)
        rejected_id = await _produce(producer, topic, rejected_event)
        expected = {"CRM": "failed", "CMS": "success", "CSS": "success"}
        await eventually(lambda: _has_statuses(db, rejected_id, expected), "CRM failed on 400")
        crm = (await _records(db, rejected_id))["CRM"]
        assert (crm["retry_count"], crm["last_http_status"]) == (0, 400)
        assert "400" in crm["error_message"]
        assert await _attempts(db, rejected_id, "CRM") == [("rejected", 400)]

        await _inject_fault(stub, {"system": "CRM", "mode": "down"})
        down_id = await _produce(producer, topic, _event("C301", 1))
        await eventually(lambda: _has_statuses(db, down_id, expected), "CRM failed after retries")
        crm = (await _records(db, down_id))["CRM"]
        assert (crm["retry_count"], crm["last_http_status"], crm["completed_at"] is not None) == (3, None, True)
        assert "connection_error" in crm["error_message"]
        assert await _attempts(db, down_id, "CRM") == [("retryable", None)] * 4

        # A failed record is final for redeliveries: no new attempt (admin re-drive is a later feature).
        await _produce(producer, topic, rejected_event, event_id=rejected_id)

        async def crm_skipped() -> bool:
            return _metric(runtime, "sync_redeliveries_skipped_total", system_code="CRM") == 1

        await eventually(crm_skipped, "the redelivery to be skipped")
        assert await _attempts(db, rejected_id, "CRM") == [("rejected", 400)]
        assert _metric(runtime, "sync_attempts_total", system_code="CRM", result="rejected") == 1
        assert _metric(runtime, "sync_attempts_total", system_code="CRM", result="retryable") == 4
        assert _metric(runtime, "external_sync_status_total", system_code="CRM", status="failed") == 2
        assert [call.system for call in stub.state.received()].count("CRM") == 0


async def _has_statuses(db: asyncpg.Connection, event_id: str, expected: dict[str, str]) -> bool:
    return await _statuses(db, event_id) == expected


async def test_shutdown_mid_retry_leaves_the_message_uncommitted_and_a_restart_resumes_it(
    harness: Harness,
) -> None:
    db, stub, producer, topic = harness.db, harness.stub, harness.producer, harness.topic
    # CRM answers slower than the connector waits: each call times out (though the stub may apply it).
    await _inject_fault(stub, {"system": "CRM", "mode": "latency", "latencyMs": 1000})
    settings = harness.settings(http_timeout_s=0.3, max_retry_count=20, backoff_max_s=0.4)
    async with running_connector(settings):
        event_id = await _produce(producer, topic, _event("C400", 1))

        async def crm_retrying() -> bool:
            statuses = await _statuses(db, event_id)
            return statuses == {"CRM": "retrying", "CMS": "success", "CSS": "success"}

        await eventually(crm_retrying, "CRM retrying after a timeout")
    crm = (await _records(db, event_id))["CRM"]
    assert crm["sync_status"] == "retrying"
    assert "timeout" in crm["error_message"]
    assert await _committed_total(harness.kafka, topic, settings.group_id("CRM")) == 0
    assert await _committed_total(harness.kafka, topic, settings.group_id("CMS")) == 1

    async with aiohttp.ClientSession() as http, http.delete(stub.url + "/_faults") as response:
        assert response.status == 204
    async with running_connector(settings):
        await eventually(lambda: _succeeded(db, event_id, "CRM"), "CRM success after the restart")
    attempts = await _attempts(db, event_id, "CRM")
    assert attempts[-1] == ("applied", 200)
    assert set(attempts[:-1]) == {("retryable", None)}
    crm = (await _records(db, event_id))["CRM"]
    assert crm["retry_count"] == len(attempts) - 1 > 0  # counted across both runs
    # One effect per system: timed-out calls and the retry all carried the same Idempotency-Key.
    assert sorted(call.system for call in stub.state.received()) == sorted(SYSTEMS)
    assert await _committed_total(harness.kafka, topic, settings.group_id("CRM")) == 1

"""Helpers for the sync-connector tests: the stub systems, a producer, the sync tables, a running connector."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from opentelemetry.sdk.trace import TracerProvider

from contracts.events import NAME_CHANGED_TYPE, CustomerNameChanged, encode_event
from libs.kit.db import DatabaseSettings
from libs.kit.kafka import KafkaSettings, client_options
from services.stub_externals.app import RunningStub, start_stub_server
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.runtime import ConnectorRuntime
from services.sync_connector.settings import ConnectorSettings
from tests.auth_support import authorize, connector_token_settings
from tests.polling import eventually

T = TypeVar("T")
SYSTEMS = ("CRM", "CMS", "CSS")
SECRETS = {"CRM": "crm-secret", "CMS": "cms-secret", "CSS": "css-secret"}


class ManualClock:
    """The connector's clock, moved forward by the test: real time plus an offset that only grows.

    Leases, backoff, deadlines and breaker cool-downs are decided on it, so a test runs hours of an
    outage in seconds by jumping, while everything that happens between jumps runs in real time.
    """

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


def all_systems(status: str) -> dict[str, str]:
    return dict.fromkeys(SYSTEMS, status)


def name_changed(customer_id: str, version: int, new_name: str = "李四") -> CustomerNameChanged:
    return CustomerNameChanged(
        customer_id=customer_id,
        application_id=f"APP-{customer_id}-{version}",
        old_name="张三",
        new_name=new_name,
        profile_version=version,
        reason="更名",
        changed_at=datetime.now(UTC),
    )


def metric(runtime: ConnectorRuntime, name: str, **labels: str) -> float:
    return runtime.registry.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def running_connector(
    settings: ConnectorSettings, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[ConnectorRuntime]:
    async with ConnectorRuntime(settings, tracer_provider=TracerProvider(), clock=clock) as runtime:
        # Produce only once every group owns its partitions, so timing assertions compare systems, not joins.
        async def assigned() -> bool:
            return runtime.partitions_assigned

        await eventually(assigned, "all three consumer groups to be assigned", timeout=30)
        yield runtime


@dataclass
class ConnectorHarness:
    database_url: str
    kafka: KafkaSettings
    topic: str
    stub: RunningStub
    producer: AIOKafkaProducer
    db: asyncpg.Connection
    http: aiohttp.ClientSession

    def settings(self, **overrides: Any) -> ConnectorSettings:
        settings = ConnectorSettings(
            database=DatabaseSettings(url=self.database_url, pool_size=5),
            # Short group timeouts: a restarted member's old session is waited out (restart test).
            kafka=msgspec.structs.replace(
                self.kafka, session_timeout_ms=2_000, heartbeat_interval_ms=250, rebalance_timeout_ms=2_000
            ),
            topic=self.topic,
            group_prefix=f"sync-connector-test-{uuid.uuid4().hex[:8]}",
            http_port=0,
            crm_url=self.stub.url,
            cms_url=self.stub.url,
            css_url=self.stub.url,
            crm_secret=SECRETS["CRM"],
            cms_secret=SECRETS["CMS"],
            css_secret=SECRETS["CSS"],
            backoff_base_s=0.05,
            backoff_max_s=0.2,
            http_timeout_s=5.0,
            http_connect_timeout_s=0.5,
            claim_lease_s=6.0,
            retry_poll_interval_s=0.1,
            breaker_failure_threshold=5,
            breaker_cooldown_s=0.5,
            dlq_poll_interval_s=0.2,
            shutdown_grace_s=5.0,
            auth=connector_token_settings(),
        )
        return msgspec.structs.replace(settings, **overrides)

    async def produce(
        self,
        event: CustomerNameChanged,
        *,
        event_id: str | None = None,
        value: bytes | None = None,
        traceparent: str | None = None,
        partition: int | None = None,
    ) -> str:
        """One CloudEvents message keyed by customer id; returns its event id."""
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
        await self.producer.send_and_wait(
            self.topic,
            value if value is not None else encode_event(event),
            key=event.customer_id.encode(),
            headers=[(k, v.encode()) for k, v in headers.items()],
            partition=partition,
        )
        return event_id

    async def records(self, event_id: str) -> dict[str, asyncpg.Record]:
        rows = await self.db.fetch("SELECT * FROM sync.external_sync_records WHERE event_id = $1", uuid.UUID(event_id))
        return {row["system_code"]: row for row in rows}

    async def statuses(self, event_id: str) -> dict[str, str]:
        return {code: row["sync_status"] for code, row in (await self.records(event_id)).items()}

    def statuses_become(self, event_id: str, expected: dict[str, str]) -> Callable[[], Awaitable[bool]]:
        """A check for ``eventually``: the event's records have exactly these statuses."""

        async def check() -> bool:
            return await self.statuses(event_id) == expected

        return check

    async def attempts(self, event_id: str, system: str) -> list[tuple[str, int | None]]:
        rows = await self.db.fetch(
            "SELECT a.outcome, a.http_status FROM sync.external_sync_attempts a "
            "JOIN sync.external_sync_records r ON r.id = a.record_id "
            "WHERE r.event_id = $1 AND r.system_code = $2 ORDER BY a.attempt_no",
            uuid.UUID(event_id),
            system,
        )
        return [(row["outcome"], row["http_status"]) for row in rows]

    async def inject_fault(self, fault: dict[str, Any]) -> None:
        async with self.http.post(self.stub.url + "/_faults", json=fault) as response:
            assert response.status == 201

    async def clear_faults(self) -> None:
        async with self.http.delete(self.stub.url + "/_faults") as response:
            assert response.status == 204

    async def stub_stats(self) -> dict[str, dict[str, int]]:
        async with self.http.get(self.stub.url + "/_stats") as response:
            stats: dict[str, dict[str, int]] = await response.json()
            return stats

    def applied_versions(self, system: str, customer_id: str) -> list[int]:
        """The versions the stub applied (2xx) for one customer at one system, in arrival order."""
        return [
            call.body["profileVersion"]
            for call in self.stub.state.received(system)
            if call.body["customerId"] == customer_id and call.status == 200
        ]

    async def dead_letters(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.db.fetch("SELECT * FROM sync.dead_letters ORDER BY id")
        return rows

    async def dlq_messages(self, system: str, count: int, timeout: float = 20.0) -> list[Any]:
        """The first ``count`` messages of a system's dead-letter topic (read without a group)."""
        topic = f"{self.topic}.dlq.{system.lower()}"
        reader = AIOKafkaConsumer(**client_options(self.kafka), enable_auto_commit=False)
        await reader.start()
        messages: list[Any] = []
        try:

            async def topic_exists() -> set[int]:
                await reader._client.force_metadata_update()
                found: set[int] | None = reader.partitions_for_topic(topic)
                return found or set()

            partitions = await eventually(topic_exists, f"topic {topic}", timeout=timeout)
            reader.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            await reader.seek_to_beginning()

            async def read() -> bool:
                for batch in (await reader.getmany(timeout_ms=200)).values():
                    messages.extend(batch)
                return len(messages) >= count

            await eventually(read, f"{count} message(s) on {topic}", timeout=timeout)
        finally:
            await reader.stop()
        return messages

    def calls_to(self, system: str) -> int:
        return sum(1 for call in self.stub.state.received() if call.system == system)

    async def committed_total(self, group_id: str) -> int:
        """Sum of a group's committed offsets."""
        reader = AIOKafkaConsumer(**client_options(self.kafka), group_id=group_id, enable_auto_commit=False)
        await reader.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(self.kafka.topic_partitions)]
            reader.assign(partitions)
            return sum([await reader.committed(tp) or 0 for tp in partitions])
        finally:
            await reader.stop()


async def fail_next_claims(db: asyncpg.Connection, table: str, *, where: str, times: int = 1) -> None:
    """Make PostgreSQL refuse the next ``times`` claims of rows of ``table`` matching ``where`` (SQL on NEW),
    with the error a statement timeout raises: a real database error inside the claiming transaction,
    after the breaker permit for the call was taken and before the commit. ``claims_seen`` tells how many
    claims came by since."""
    await db.execute(f"""
        CREATE SEQUENCE IF NOT EXISTS public.claims_seen;
        CREATE OR REPLACE FUNCTION public.fail_claims() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('public.claims_seen') <= {int(times)} THEN
                RAISE EXCEPTION 'injected: canceling statement due to statement timeout'
                    USING ERRCODE = 'query_canceled';
            END IF;
            RETURN NEW;
        END
        $$;
        CREATE TRIGGER fail_claims BEFORE UPDATE OF claim_token ON {table} FOR EACH ROW
            WHEN (NEW.claim_token IS NOT NULL AND NEW.claim_token IS DISTINCT FROM OLD.claim_token AND ({where}))
            EXECUTE FUNCTION public.fail_claims();
    """)


async def claims_seen(db: asyncpg.Connection) -> int:
    seen: int = await db.fetchval("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.claims_seen")
    return seen


@asynccontextmanager
async def connector_harness(database_url: str, kafka: KafkaSettings, topic: str) -> AsyncIterator[ConnectorHarness]:
    """The stub systems (signatures enforced), a plain producer (with the settings' TLS and SASL) and a
    database connection."""
    producer = AIOKafkaProducer(**client_options(kafka), enable_idempotence=False)
    await producer.start()
    db = await asyncpg.connect(database_url)
    try:
        async with (
            await start_stub_server(secrets=SECRETS) as stub,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        ):
            yield ConnectorHarness(database_url, kafka, topic, stub, producer, db, authorize(http))
    finally:
        await db.close()
        await producer.stop()

"""The dead-letter publisher is supervised: an unexpected exception is logged, counted, and it restarts.

Real PostgreSQL and a real broker; the fault is injected into the publisher's own code (a bug), not
into the database or the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from libs.kit.db import DatabaseSettings, make_engine
from services.sync_connector.dead_letters import DeadLetterPublisher
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.unprocessable import UNDECODABLE, UnprocessableMessages, UnprocessableMetrics
from tests.connector_support import ConnectorHarness
from tests.polling import eventually


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


class BuggyOnce(DeadLetterPublisher):
    """A publisher whose first round hits a bug (an exception that is neither Kafka's nor the database's)."""

    rounds = 0

    async def publish_once(self) -> int:
        self.rounds += 1
        if self.rounds == 1:
            raise RuntimeError("a bug in the publisher")
        return await super().publish_once()


@pytest.fixture
async def engine(harness: ConnectorHarness) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(DatabaseSettings(url=harness.database_url, pool_size=2))
    yield engine
    await engine.dispose()


async def test_the_publisher_restarts_after_an_unexpected_exception(
    harness: ConnectorHarness, engine: AsyncEngine
) -> None:
    registry = CollectorRegistry()
    metrics = ConnectorMetrics(registry)
    store = UnprocessableMessages(engine, UnprocessableMetrics(registry))
    message = Message(harness.topic, 0, 7, b"C-9", b"\xffnot json", (("ce_id", b"e-1"), ("x-trace", b"\x00\x01")))
    await store.record("CMS", message, reason=UNDECODABLE, error="bad event value", failures=1)
    # A row whose message cannot be built (its stored headers are not a list) must not hold the others back.
    await harness.db.execute(
        "INSERT INTO sync.unprocessable_messages (system_code, topic, kafka_partition, kafka_offset, headers, "
        "reason, error, failures) VALUES ('CMS', $1, 0, 8, '{\"not\": \"a list\"}', 'undecodable', 'x', 1)",
        harness.topic,
    )
    publisher = BuggyOnce(
        engine, harness.kafka, lambda code: f"{harness.topic}.dlq.{code.lower()}", metrics, poll_interval_s=0.1
    )
    with capture_logs() as logs:
        publisher.start()
        try:
            (published,) = await harness.dlq_messages("CMS", 1)

            async def marked() -> bool:
                row = await harness.db.fetchrow(
                    "SELECT published_at FROM sync.unprocessable_messages WHERE kafka_offset = 7"
                )
                return row is not None and row["published_at"] is not None

            await eventually(marked, "the row marked published")
        finally:
            await asyncio.wait_for(publisher.stop(), 10)

    assert publisher.rounds >= 2
    assert (published.key, published.value) == (b"C-9", b"\xffnot json")
    headers = dict(published.headers)
    assert (headers["ce_id"], headers["x-trace"]) == (b"e-1", b"\x00\x01")  # as read, bytes and all
    assert headers["x-dlq-reason"] == b"undecodable: bad event value"
    assert headers["x-dlq-source"] == f"{harness.topic}/0/7".encode()

    def count(kind: str) -> float:
        return registry.get_sample_value("sync_dead_letter_publish_errors_total", {"kind": kind}) or 0.0

    assert count("unexpected") == 1
    assert count("unbuildable") >= 1
    events = [line["event"] for line in logs]
    assert events.count("dead_letter_publisher_crashed") == 1
    assert "dead_letter_publisher_restarted" in events
    crashed = next(line for line in logs if line["event"] == "dead_letter_publisher_crashed")
    assert crashed["log_level"] == "error"
    assert "a bug in the publisher" in crashed["error"]
    unbuildable = await harness.db.fetchrow(
        "SELECT published_at, publish_error FROM sync.unprocessable_messages WHERE kafka_offset = 8"
    )
    assert unbuildable["published_at"] is None
    assert "ValidationError" in unbuildable["publish_error"] or "DecodeError" in unbuildable["publish_error"]

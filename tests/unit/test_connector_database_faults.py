"""The connector's background loops outlive every way the database fails, including errors asyncpg raises
unwrapped.

SQLAlchemy wraps the driver's errors of a statement, but not every error of opening a connection: while
PostgreSQL recovers after a restart, asyncpg's CannotConnectNowError comes out of the pool as it is. The
chaos suite found a retry scheduler that caught only SQLAlchemy's errors dead after a PostgreSQL restart,
silently: that system's retries were never made again by that instance.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from libs.kit.kafka import KafkaSettings
from services.sync_connector.breaker import CircuitBreaker
from services.sync_connector.dead_letters import DeadLetterPublisher
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.scheduler import RetryScheduler
from services.sync_connector.settling import DueBatch

FAULTS = [
    asyncpg.exceptions.CannotConnectNowError("the database system is not yet accepting connections"),
    asyncpg.exceptions.InterfaceError("connection is closed"),
    ConnectionRefusedError(111, "Connect call failed"),
]


class BackgroundLoop(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until(loop: BackgroundLoop, answered: asyncio.Event) -> None:
    """Runs the loop until its database answered after the faults (bounded), then stops it."""
    loop.start()
    try:
        await asyncio.wait_for(answered.wait(), timeout=10)
    finally:
        await loop.stop()


class DatabaseComingBack:
    """A delivery whose database fails ``failures`` times before it answers (with nothing due)."""

    system_code = "CRM"

    def __init__(self, error: BaseException, failures: int) -> None:
        self._error = error
        self._failures = failures
        self.answered = asyncio.Event()

    async def claim_due(self, limit: int) -> DueBatch[Any]:  # noqa: ARG002 - the protocol's signature
        if self._failures:
            self._failures -= 1
            raise self._error
        self.answered.set()
        return DueBatch([], 0, 0)

    async def attempt(self, claim: Any, stop: asyncio.Event) -> None:  # noqa: ARG002 - the protocol's signature
        raise AssertionError("nothing was claimed")

    async def expire_overdue(self, limit: int) -> int:  # noqa: ARG002 - the protocol's signature
        return 0


@pytest.mark.parametrize("error", FAULTS, ids=lambda e: type(e).__name__)
async def test_the_retry_scheduler_keeps_polling_through_database_errors(error: BaseException) -> None:
    registry = CollectorRegistry()
    delivery = DatabaseComingBack(error, failures=2)
    scheduler: RetryScheduler[Any] = RetryScheduler(
        delivery,
        CircuitBreaker("CRM", failure_threshold=5, cooldown_s=1.0),
        ConnectorMetrics(registry),
        TracerProvider().get_tracer(__name__),
        poll_interval_s=0.01,
        concurrency=1,
        grace_s=1.0,
    )
    await run_until(scheduler, delivery.answered)
    assert registry.get_sample_value("sync_retry_scheduler_errors_total", {"system_code": "CRM"}) == 2


class DeadLettersComingBack(DeadLetterPublisher):
    def __init__(self, error: BaseException, failures: int, registry: CollectorRegistry) -> None:
        super().__init__(
            None,  # type: ignore[arg-type]  # publish_once below never touches the database
            KafkaSettings(),
            lambda code: f"dlq.{code}",
            ConnectorMetrics(registry),
            poll_interval_s=0.01,
        )
        self._error = error
        self._failures = failures
        self.answered = asyncio.Event()

    async def publish_once(self) -> int:
        if self._failures:
            self._failures -= 1
            raise self._error
        self.answered.set()
        return 0


@pytest.mark.parametrize("error", FAULTS, ids=lambda e: type(e).__name__)
async def test_the_dead_letter_publisher_keeps_polling_through_database_errors(error: BaseException) -> None:
    registry = CollectorRegistry()
    publisher = DeadLettersComingBack(error, failures=2, registry=registry)
    await run_until(publisher, publisher.answered)
    assert registry.get_sample_value("sync_dead_letter_publish_errors_total", {"kind": "database"}) == 2

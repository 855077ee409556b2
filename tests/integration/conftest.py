"""Fixtures the integration tests share: the profile API in this process, a database connection, the
connector's harness.

``client`` is the profile app (``create_app``) behind Litestar's test client on the test's database,
authorized for every route but the notifier's; a module that needs other settings overrides
``profile_env``. ``db`` is a plain asyncpg connection to the same database. ``harness`` is the
sync-connector's test harness (stub systems in this process, settings, Kafka helpers) on the test's
database and topic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.kit.kafka import KafkaSettings
from tests.connector_support import ConnectorHarness, connector_harness
from tests.ledger_support import Client, profile_client


@pytest.fixture
def profile_env() -> dict[str, str]:
    """``PROFILE_*`` settings added to ``client``'s app (a test module may override it)."""
    return {}


@pytest.fixture
async def client(database_url: str, profile_env: dict[str, str]) -> AsyncIterator[Client]:
    async with profile_client(database_url, **profile_env) as test_client:
        yield test_client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def harness(database_url: str, kafka_settings: KafkaSettings, topic: str) -> AsyncIterator[ConnectorHarness]:
    async with connector_harness(database_url, kafka_settings, topic) as harness:
        yield harness

"""Fixtures the integration tests share: the profile API in this process, and a database connection.

``client`` is the profile app (``create_app``) behind Litestar's test client on the test's database,
authorized for every route but the notifier's; a module that needs other settings overrides
``profile_env``. ``db`` is a plain asyncpg connection to the same database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

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

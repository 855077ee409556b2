"""Every pooled connection busy (overload) is the database out of reach for now: a use case's unit
of work fails with DatabaseError (503, retryable), not an unexpected error (500, "needs an operator")."""

from __future__ import annotations

import pytest

from libs.kit.db import DatabaseSettings, make_engine
from libs.kit.errors import DatabaseError
from services.profile.shared.storage.unit_of_work import SqlUnitOfWork


async def test_a_unit_of_work_that_finds_no_free_connection_fails_as_database_unavailable(database_url: str) -> None:
    engine = make_engine(DatabaseSettings(url=database_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2))
    try:
        async with engine.connect():  # the pool's only connection, held by another request
            with pytest.raises(DatabaseError, match="database unavailable"):
                async with SqlUnitOfWork(engine):
                    pass
        async with SqlUnitOfWork(engine) as uow:  # free again: the next request goes through
            assert uow.connection is not None
    finally:
        await engine.dispose()

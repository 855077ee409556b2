"""The profile API's pool pings only connections that sat idle (libs/kit/db.py ``ping_after_idle_s``)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db import DatabaseSettings, make_engine, sqlalchemy_url


async def _terminate_backend_of(database_url: str, engine_pid: int) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", engine_pid)
    finally:
        await admin.close()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid: int = await connection.scalar(text("SELECT pg_backend_pid()"))
    return pid


async def test_an_idle_dead_connection_is_replaced_before_use(database_url: str) -> None:
    settings = DatabaseSettings(url=sqlalchemy_url(database_url), pool_size=1, max_overflow=0)
    engine = make_engine(settings, ping_after_idle_s=0.001)
    try:
        first = await _backend_pid(engine)
        await _terminate_backend_of(database_url, first)  # the connection idles longer than 1 ms meanwhile
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_recently_used_dead_connection_fails_once_then_the_pool_recovers(database_url: str) -> None:
    settings = DatabaseSettings(url=sqlalchemy_url(database_url), pool_size=1, max_overflow=0)
    engine = make_engine(settings, ping_after_idle_s=3600)
    try:
        first = await _backend_pid(engine)
        await _terminate_backend_of(database_url, first)
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()

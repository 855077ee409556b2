"""Async SQLAlchemy engine factory and the unit-of-work base class."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

import msgspec
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


class DatabaseSettings(msgspec.Struct, frozen=True):
    # The database (SQLAlchemy URL; postgresql:// works too). The password is part of it: from a secret.
    url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    # Connections kept open, and how many more may be opened (and closed again) when they are all busy.
    pool_size: int = 10
    max_overflow: int = 10
    # How long a caller waits for a connection before the request fails as unavailable (retryable).
    pool_timeout_s: float = 5.0
    # PostgreSQL's statement_timeout for every connection: a statement running longer is cancelled.
    statement_timeout_ms: int = 10_000
    # Test each pooled connection with a round trip before use. Without it, a connection that died
    # with the server fails its first statement once (and SQLAlchemy then drops the whole pool).
    pool_pre_ping: bool = True


def asyncpg_dsn(url: str) -> str:
    """The plain libpq URL (for asyncpg.connect) of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy asyncpg URL of a plain postgresql:// URL."""
    if url.startswith("postgresql://"):
        return url.replace("postgresql://", "postgresql+asyncpg://", 1)
    return url


def make_engine(settings: DatabaseSettings, *, ping_after_idle_s: float = 0.0) -> AsyncEngine:
    """``ping_after_idle_s`` > 0 (with ``pool_pre_ping``): only a connection idle that long is pinged.

    SQLAlchemy's pre-ping costs three round trips per checkout on asyncpg (BEGIN, ping,
    ROLLBACK). A connection in use moments ago is very likely alive; if it is not, its
    statement fails once (a retryable error) and SQLAlchemy drops the whole pool.
    """
    ping_when_idle = settings.pool_pre_ping and ping_after_idle_s > 0
    engine = create_async_engine(
        sqlalchemy_url(settings.url),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=settings.pool_pre_ping and not ping_when_idle,
        connect_args={"server_settings": {"statement_timeout": str(settings.statement_timeout_ms)}},
    )
    if ping_when_idle:
        _ping_when_idle(engine, ping_after_idle_s)
    return engine


_IDLE_SINCE = "kit_idle_since"


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _mark_idle(_: object, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: object) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_s:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure of the ping means a dead connection
            raise DisconnectionError(f"ping failed: {type(exc).__name__}") from exc
        if not alive:
            raise DisconnectionError("ping failed")


class UnitOfWork:
    """One database transaction per use case: commit explicitly, roll back otherwise.

    Subclasses build their repositories in ``_bind`` from the open connection.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            msg = "unit of work used outside 'async with'"
            raise RuntimeError(msg)
        return self._connection

    def _bind(self, connection: AsyncConnection) -> None:
        """Hook for subclasses: create repositories on the connection."""

    async def __aenter__(self) -> Self:
        self._connection = await self._engine.connect()
        await self._connection.begin()
        self._bind(self._connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self.connection, None
        try:
            if connection.in_transaction():
                await connection.rollback()
        finally:
            await connection.close()

    async def commit(self) -> None:
        await self.connection.commit()

    async def rollback(self) -> None:
        await self.connection.rollback()

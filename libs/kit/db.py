"""Async SQLAlchemy engine factory and the unit-of-work base class."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


class DatabaseSettings(msgspec.Struct, frozen=True):
    url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout_s: float = 5.0
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


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(settings.url),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=settings.pool_pre_ping,
        connect_args={"server_settings": {"statement_timeout": str(settings.statement_timeout_ms)}},
    )


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

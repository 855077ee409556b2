"""The shared body of every area's Alembic ``env.py`` (async, asyncpg).

Migrations import nothing of ``libs`` or ``services`` (import-linter and a unit test check it): what an
applied migration does must not change when the product's code does.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _run(connection: Connection, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(connection=connection, version_table_schema=schema, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def _asyncpg_url(url: str) -> str:
    """SQLAlchemy's asyncpg URL of a plain ``postgresql://`` URL (others are taken as they are)."""
    prefix = "postgresql://"
    return "postgresql+asyncpg://" + url.removeprefix(prefix) if url.startswith(prefix) else url


async def _run_async(url: str, schema: str) -> None:
    engine = create_async_engine(_asyncpg_url(url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run, schema)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    config = context.config
    url: str = config.attributes["database_url"]
    schema: str = config.attributes["schema"]
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async(url, schema))
        return
    msg = "run migrations from synchronous code (or a worker thread), not inside an event loop"
    raise RuntimeError(msg)


def execute_script(sql: str) -> None:
    """Run a multi-statement SQL script in the migration's transaction.

    asyncpg's prepared statements take one command; its simple-query path takes many.
    """
    from alembic import op  # noqa: PLC0415
    from sqlalchemy.util import await_only  # noqa: PLC0415

    driver_connection = op.get_bind().connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(driver_connection.execute(sql))

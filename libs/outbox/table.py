"""The outbox tables as SQLAlchemy Core metadata (DDL lives in the migrations).

``shard`` is a stored generated column: ``md5(aggregate_id)`` read as an unsigned
32-bit number, modulo the shard count. md5 gives the same shard on every platform
and PostgreSQL version, and ``shard_of`` computes the same value in Python.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

# Fixed by the migration that created the shard column and the lease rows: changing it
# would move keys between shards while rows of theirs are pending.
SHARD_COUNT = 32
SHARD_EXPRESSION = f"((('x' || left(md5(aggregate_id), 8))::bit(32)::bigint % {SHARD_COUNT})::smallint)"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    FAILED = "failed"


def shard_of(aggregate_id: str, shard_count: int = SHARD_COUNT) -> int:
    """The shard PostgreSQL computes for ``aggregate_id`` (server encoding UTF8)."""
    return int(hashlib.md5(aggregate_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) % shard_count


def outbox_table(metadata: MetaData, schema: str) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("seq", BigInteger, nullable=False, server_default=None),
        Column("aggregate_type", String(50), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
        Column("shard", SmallInteger, Computed(SHARD_EXPRESSION, persisted=True), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text),
        Column("published_partition", Integer),
        Column("published_offset", BigInteger),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True)),
        schema=schema,
    )


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel an insert into ``schema.outbox`` signals."""
    return f"{schema}_outbox"

"""The outbox table as SQLAlchemy Core metadata (DDL lives in the migrations)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB


class OutboxStatus(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    FAILED = "failed"


def outbox_table(metadata: MetaData, schema: str) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("seq", BigInteger, nullable=False, server_default=None),
        Column("aggregate_type", String(50), nullable=False),
        Column("aggregate_id", String(64), nullable=False),
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

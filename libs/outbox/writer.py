"""Adds outbox rows inside the caller's transaction: the only code that writes new rows.

Three ways in, one list of columns and one encoding:

- ``OutboxWriter.add`` / ``add_many``: SQLAlchemy Core on the unit of work's connection (one row, or
  many in one multi-row INSERT: a restore writes thousands per transaction);
- ``OutboxInsert``: the same row as a fragment of a larger statement with positional parameters
  (``$n``), for a caller that writes everything of one change in a single round trip (the profile's
  approval), and the builder of its parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.outbox.table import OutboxStatus


class OutboxMessage(msgspec.Struct, frozen=True):
    id: uuid.UUID
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: Mapping[str, Any]
    headers: Mapping[str, str]
    created_at: datetime


# The columns a message fills, in the order of ``OutboxInsert``'s parameters; the rest start so.
_MESSAGE_COLUMNS = ("id", "aggregate_type", "aggregate_id", "event_type", "payload", "headers", "created_at")
_JSON_COLUMNS = frozenset({"payload", "headers"})
_NEW_ROW: Mapping[str, Any] = {"status": OutboxStatus.PENDING.value, "attempts": 0}


def _message_values(message: OutboxMessage) -> dict[str, Any]:
    return {column: getattr(message, column) for column in _MESSAGE_COLUMNS}


def pending_row(message: OutboxMessage) -> dict[str, Any]:
    """The values of a new (pending) outbox row for ``message``, for a SQLAlchemy INSERT."""
    values = _message_values(message)
    for column in _JSON_COLUMNS:
        values[column] = dict(values[column])
    return {**values, **_NEW_ROW}


class OutboxWriter:
    """Writes to the outbox on the unit of work's connection; the commit publishes nothing."""

    def __init__(self, connection: AsyncConnection, table: Table) -> None:
        self._connection = connection
        self._table = table

    async def add(self, message: OutboxMessage) -> None:
        await self._connection.execute(insert(self._table).values(pending_row(message)))

    async def add_many(self, messages: Sequence[OutboxMessage]) -> None:
        """Many rows in one multi-row INSERT, in the order given (their ``seq`` order)."""
        if messages:
            await self._connection.execute(insert(self._table), [pending_row(message) for message in messages])


class OutboxInsert:
    """One new outbox row as ``INSERT INTO <schema>.outbox ... VALUES ($n, ...)``, to end a statement of
    data-modifying CTEs; its parameters are numbered from ``first_parameter``.

    ``parameters(message)`` gives their values, in order, for asyncpg: JSON columns as JSON text (the
    codec asyncpg uses by default and SQLAlchemy registers on its asyncpg connections).
    """

    def __init__(self, schema: str, first_parameter: int) -> None:
        numbers = range(first_parameter, first_parameter + len(_MESSAGE_COLUMNS))
        columns = ", ".join((*_MESSAGE_COLUMNS, *_NEW_ROW))
        values = ", ".join((*(f"${n}" for n in numbers), *(_literal(value) for value in _NEW_ROW.values())))
        self.sql = f'INSERT INTO "{schema}".outbox ({columns}) VALUES ({values})'  # noqa: S608 - names, no data

    @staticmethod
    def parameters(message: OutboxMessage) -> tuple[Any, ...]:
        values = _message_values(message)
        for column in _JSON_COLUMNS:
            values[column] = msgspec.json.encode(values[column]).decode()
        return tuple(values[column] for column in _MESSAGE_COLUMNS)


def _literal(value: object) -> str:
    """A SQL literal of one of ``_NEW_ROW``'s constant values (a word or a number)."""
    return str(value) if isinstance(value, int) else f"'{value}'"

"""The listings' filters as SQL conditions: one rule for each kind of filter, whichever list it narrows."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement


def equal_where_given(*filters: tuple[ColumnElement[Any], object]) -> list[ColumnElement[bool]]:
    """``column = value`` for each filter given (None: no condition); an enum by its value, as the column holds it."""
    return [
        column == (value.value if isinstance(value, Enum) else value) for column, value in filters if value is not None
    ]


def in_period(
    column: ColumnElement[datetime], start: datetime | None, end: datetime | None
) -> list[ColumnElement[bool]]:
    """From ``start`` (inclusive) to ``end`` (exclusive); None leaves that side open."""
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions

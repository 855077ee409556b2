"""Path and query parameters every listing and item route shares."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import Parameter, QueryParameter

from services.profile.domain.errors import InvalidInput
from services.profile.domain.validation import field_error
from services.profile.shared.pagination import CURSOR_PATTERN, MAX_PAGE_SIZE

PathId = Annotated[str, Parameter(max_length=64)]
# Opaque, as the service issued it: base64url without padding; it continues only the listing (filters) it came from.
Cursor = Annotated[
    str | None,
    QueryParameter(
        min_length=1, max_length=512, pattern=CURSOR_PATTERN, description="`nextCursor` of the previous page"
    ),
]
Limit = Annotated[int | None, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"page size, at most {MAX_PAGE_SIZE}")]
_AWARE = Annotated[datetime, msgspec.Meta(tz=True)]


def time_query(name: str, description: str) -> Any:
    """A time in the query: ``Annotated[str | None, time_query(...)]``, read with ``instant``.

    Read as a string, not a datetime: the framework would also take a number (seconds since the epoch)
    and fail on one out of range (a 500); the document says RFC 3339 and that is what is taken.
    """
    return QueryParameter(name=name, format=OpenAPIFormat.DATE_TIME, max_length=64, description=description)


# A time in a body, read with ``instant`` for the same reason (msgspec's lax decoding takes numbers too).
TimeText = Annotated[str, msgspec.Meta(max_length=64, extra_json_schema={"extra": {"format": "date-time"}})]


def instant(value: str | None, name: str, source: str = "query") -> datetime | None:
    """An RFC 3339 time with its offset, or 422 naming the parameter (or body field)."""
    if value is None:
        return None
    try:
        return msgspec.convert(value, _AWARE)
    except msgspec.ValidationError as exc:
        message = "an RFC 3339 time with its offset, e.g. 2026-01-05T09:00:00Z"
        raise InvalidInput(
            f"{name} must be {message}", errors=[{**field_error(name, message), "source": source}]
        ) from exc

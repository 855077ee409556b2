"""Opaque keyset cursors: the position of the last item seen, bound to the filters it was made with.

Keyset (not offset) pagination is stable: rows inserted or deleted while a client pages
through a listing never make it skip or repeat an item that stays in the listing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import msgspec

from services.profile.domain.errors import InvalidInput
from services.profile.domain.validation import field_error

T = TypeVar("T")
K = TypeVar("K")
TimeKey = tuple[datetime, str]

CURSOR_PATTERN = "^[A-Za-z0-9_-]+$"  # what encode_cursor makes: base64url without padding
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class Page(msgspec.Struct, Generic[T], frozen=True):
    items: list[T]
    next_cursor: str | None


class _Cursor(msgspec.Struct, frozen=True):
    p: list[str | int]  # the sort key of the last item
    f: str  # fingerprint of the filters


def fingerprint(*filters: object) -> str:
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:16]


def encode_cursor(position: Sequence[str | int], filters_fingerprint: str) -> str:
    raw = msgspec.json.encode(_Cursor(list(position), filters_fingerprint))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, filters_fingerprint: str) -> list[str | int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise _bad_cursor("not a cursor this service issued") from exc
    if decoded.f != filters_fingerprint:
        raise _bad_cursor("the cursor was issued for other filters; start again without it")
    return decoded.p


def time_key(cursor: str | None, filters_fingerprint: str) -> TimeKey | None:
    """A ``(timestamp, id)`` position, or None for the first page."""
    if cursor is None:
        return None
    position = decode_cursor(cursor, filters_fingerprint)
    try:
        stamp, key = position
        return datetime.fromisoformat(str(stamp)), str(key)
    except ValueError as exc:
        raise _bad_cursor("malformed cursor position") from exc


def int_key(cursor: str | None, filters_fingerprint: str) -> int | None:
    if cursor is None:
        return None
    position = decode_cursor(cursor, filters_fingerprint)
    if len(position) != 1 or not isinstance(position[0], int):
        raise _bad_cursor("malformed cursor position")
    return position[0]


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_PAGE_SIZE}",
            errors=[{**field_error("limit", f"between 1 and {MAX_PAGE_SIZE}"), "source": "query"}],
        )
    return limit


class Keyset(Generic[K]):
    """A listing sorted on a key: the page size, the position after the cursor (read by ``key`` and checked
    against the listing's filters) and, from the rows fetched (``fetch``: one more than a page), the page."""

    def __init__(
        self, key: Callable[[str | None, str], K | None], cursor: str | None, limit: int | None, *filters: object
    ) -> None:
        self.size = clamp_limit(limit)
        self._fingerprint = fingerprint(*filters)
        self.after = key(cursor, self._fingerprint)
        self.fetch = self.size + 1

    def page(self, rows: Sequence[T], position: Callable[[T], Sequence[str | int]]) -> Page[T]:
        """``rows`` was fetched with ``fetch``: the extra row only says that another page exists."""
        items = list(rows[: self.size])
        has_more = len(rows) > self.size
        next_cursor = encode_cursor(position(items[-1]), self._fingerprint) if has_more and items else None
        return Page(items=items, next_cursor=next_cursor)


def _bad_cursor(message: str) -> InvalidInput:
    return InvalidInput(f"invalid cursor: {message}", errors=[{**field_error("cursor", message), "source": "query"}])

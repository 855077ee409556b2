"""Reading filters and form fields: typed values, or a sentence saying what is wrong with them.

Pages parse their own query strings (rather than letting a typed parameter fail the whole
request) so a bad value comes back as a message next to the form, with the form still there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request
from litestar.params import PathParameter

# An id in a console path: bounded, parsed by the page (so a bad one gets a page in words).
PathId = Annotated[str, PathParameter(max_length=100)]


class FieldProblems:
    """Problems found while reading one form or filter; shown in words above it."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    @property
    def text(self) -> str | None:
        return " ".join(self.messages) or None


def values(request: Request[Any, Any, Any], *names: str) -> dict[str, str]:
    """The query parameters ``names``, stripped (missing ones are empty)."""
    return {name: request.query_params.get(name, "").strip() for name in names}


def text(raw: str, label: str, problems: FieldProblems, max_length: int = 64) -> str | None:
    if not raw:
        return None
    if len(raw) > max_length:
        problems.add(f"{label} is longer than {max_length} characters.")
        return None
    return raw


def choice(raw: str, allowed: Iterable[str], label: str, problems: FieldProblems) -> str | None:
    if not raw:
        return None
    options = list(allowed)
    if raw not in options:
        problems.add(f"{label} must be one of: {', '.join(options)}.")
        return None
    return raw


def moment(raw: str, label: str, problems: FieldProblems) -> datetime | None:
    """A date-time from a ``datetime-local`` field or ISO 8601; without a zone it is UTC."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        problems.add(f"{label} is not a date and time (use YYYY-MM-DD HH:MM, UTC).")
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def ordered_range(start: datetime | None, end: datetime | None, problems: FieldProblems) -> None:
    if start is not None and end is not None and start >= end:
        problems.add("'From' must be earlier than 'to'.")


def number(raw: str, label: str, problems: FieldProblems, *, minimum: int = 0) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        problems.add(f"{label} must be a whole number of at least {minimum}.")
        return None
    return int(raw)


def form_text(form: Mapping[str, Any], name: str) -> str:
    return str(form.get(name) or "").strip()

"""ETags are the profile version (``"3"``); ``If-Match`` carries the version a client last saw."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

from services.profile.domain.errors import InvalidInput, PreconditionRequired

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        max_length=64,
        description='The ETag of the profile the change is based on, e.g. `"3"` (its version).',
    ),
]


def etag(version: int) -> str:
    return f'"{version}"'


def required_version(if_match: str | None) -> int:
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("send If-Match with the ETag of the profile you are changing (GET it first)")
    version = _version(if_match)
    if version is None:
        raise _malformed("If-Match must name one version; '*' is not accepted for an edit")
    return version


def optional_version(if_match: str | None) -> int | None:
    """None when absent or ``*`` (any current version)."""
    if if_match is None or not if_match.strip():
        return None
    return _version(if_match)


def _version(if_match: str) -> int | None:
    value = if_match.strip()
    if value == "*":
        return None
    value = value.removeprefix("W/")
    if len(value) >= 2 and value[0] == value[-1] == '"':  # noqa: PLR2004 - the two quotes
        value = value[1:-1]
    if not value.isdigit():
        raise _malformed('If-Match must be an ETag such as "3"')
    return int(value)


def _malformed(message: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"key": "If-Match", "message": message, "source": "header"}])

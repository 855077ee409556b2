"""ETags are the profile version (``"3"``); ``If-Match`` carries the version a client last saw.

The document states the rule the server enforces: a strong or weak ETag of a version (``"3"``,
``W/"3"``) or the bare version (``3``); ``*`` (any version) only where the header is optional. An
edit needs the header: without it 428 ``PRECONDITION_REQUIRED``, so the document marks it required.
"""

from __future__ import annotations

import re
from typing import Annotated, Protocol, TypeVar

from litestar import Response
from litestar.params import HeaderParameter

from services.profile.domain.errors import InvalidInput, PreconditionRequired

_VERSION = r'(?:W/)?"[0-9]{1,9}"|[0-9]{1,9}'  # a version fits the int column: at most 9 digits
EDIT_IF_MATCH_PATTERN = f"^(?:{_VERSION})$"
IF_MATCH_PATTERN = rf"^(?:\*|{_VERSION})$"
_RULE = re.compile(IF_MATCH_PATTERN)
_DESCRIPTION = 'The ETag of the profile the change is based on, e.g. `"3"` (its version)'


def _if_match(*, required: bool, pattern: str, description: str) -> HeaderParameter:
    return HeaderParameter(
        name="If-Match", required=required, schema_extra={"pattern": pattern}, description=description
    )


IfMatch = Annotated[
    str | None,
    _if_match(required=False, pattern=IF_MATCH_PATTERN, description=f"{_DESCRIPTION}, or `*` for any version."),
]
# Required in the document; the handler answers its absence (428), not the framework (422).
RequiredIfMatch = Annotated[
    str | None,
    _if_match(
        required=True,
        pattern=EDIT_IF_MATCH_PATTERN,
        description=f"{_DESCRIPTION}. Without it: 428 `PRECONDITION_REQUIRED`.",
    ),
]


def etag(version: int) -> str:
    return f'"{version}"'


class _HasVersion(Protocol):
    @property
    def version(self) -> int: ...


_Versioned = TypeVar("_Versioned", bound=_HasVersion)


def with_etag(body: _Versioned) -> Response[_Versioned]:
    """The body with its version as the ``ETag``."""
    return Response(body, headers={"ETag": etag(body.version)})


def required_version(if_match: str | None) -> int:
    if if_match is None:
        raise PreconditionRequired("send If-Match with the ETag of the profile you are changing (GET it first)")
    version = _version(if_match)
    if version is None:
        raise _malformed("If-Match must name one version; '*' is not accepted for an edit")
    return version


def optional_version(if_match: str | None) -> int | None:
    """None when absent or ``*`` (any current version)."""
    return None if if_match is None else _version(if_match)


def _version(if_match: str) -> int | None:
    if _RULE.fullmatch(if_match) is None:  # "$" is the end of the string, as in the document
        raise _malformed('If-Match must be an ETag such as "3"')
    if if_match == "*":
        return None
    return int(if_match.removeprefix("W/").strip('"'))


def _malformed(message: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"key": "If-Match", "message": message, "source": "header"}])

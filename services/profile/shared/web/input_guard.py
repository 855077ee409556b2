"""Refuse what no field may hold before it reaches a use case: NUL characters and oversized bodies.

PostgreSQL text and JSONB cannot store U+0000, so a NUL in a path, a query parameter or a
JSON string (``\\u0000``) would otherwise surface as a database error (503) instead of the
caller's mistake (422). Every other character, in any script, is data and stored verbatim.
The body is read once here (at most the app's limit, else 413) and replayed to the route.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from libs.kit.errors import AppError, ValidationError
from services.profile.shared.web.idempotency import read_body, replay_body, send_problem
from services.profile.shared.web.problems import ErrorMetrics

# A JSON ``\u0000`` escape whose backslash is not itself escaped (``\\u0000`` is the text "\u0000").
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
NO_NUL_PATTERN = r"^[^\x00]*$"  # the rule for the document's text that has no pattern of its own


def _nul_in(scope: HTTPScope) -> str | None:
    if "\x00" in scope["path"] or b"%00" in scope.get("raw_path", b""):
        return "path"
    if b"%00" in scope.get("query_string", b"") or b"\x00" in scope.get("query_string", b""):
        return "query"
    return None


def _refused(where: str) -> ValidationError:
    message = "NUL characters (U+0000) are not accepted"
    return ValidationError(f"{message} in the {where}", errors=[{"key": where, "message": message, "source": where}])


def input_guard_middleware(max_body_bytes: int, error_metrics: ErrorMetrics) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            http_scope: HTTPScope = scope
            try:
                if where := _nul_in(http_scope):
                    raise _refused(where)
                if http_scope["method"] not in _WITH_BODY:
                    await app(scope, receive, send)
                    return
                body = await read_body(receive, max_body_bytes)
                if b"\x00" in body or _JSON_NUL.search(body):
                    raise _refused("body")
            except AppError as exc:
                await send_problem(scope, send, exc, error_metrics)
                return
            await app(scope, replay_body(body, receive), send)

        return guard

    return middleware

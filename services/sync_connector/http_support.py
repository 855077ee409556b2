"""RFC 9457 problem details for the connector's Litestar API: the exception handlers and their documentation.

Every error leaves as ``application/problem+json`` with a stable ``code``: the typed ``AppError``s
as they are; the framework's own refusals of a request (a parameter, a body that does not fit the
document: 400 there) as 422 ``VALIDATION``, the status this API has always used for them; an unknown
route as 404 ``ROUTE_NOT_FOUND``; another method than the route's as 405 with ``Allow``; a database
failure as a retryable 503.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.types import ExceptionHandlersMap

from libs.kit.errors import AppError, DatabaseError, NotFoundError, ProblemDetails, ValidationError, problem_for
from libs.kit.logging import get_logger
from libs.kit.tokens import Forbidden, Unauthenticated
from services.sync_connector.db_faults import DATABASE_FAULTS

log = get_logger(__name__)
PROBLEM_JSON = "application/problem+json"
BAD_REQUEST = 400
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="sync-connector"'}  # RFC 9110: a 401 names its scheme


class RouteNotFound(NotFoundError, code="ROUTE_NOT_FOUND", title="No such route"): ...


class MethodNotAllowed(AppError, code="METHOD_NOT_ALLOWED", status=405, title="Method not allowed"): ...


def problem_response(error: AppError, path: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    problem = problem_for(error, path, None)
    if error.status == Unauthenticated.status:
        headers = {**WWW_AUTHENTICATE, **(headers or {})}
    return Response(msgspec.json.encode(problem), status_code=error.status, media_type=PROBLEM_JSON, headers=headers)


def _app_error(request: Request[Any, Any, Any], error: AppError) -> Response[bytes]:
    return problem_response(error, request.url.path)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = request.url.path
    if exc.status_code == BAD_REQUEST:  # a parameter or body the document does not allow
        return problem_response(ValidationError(_validation_detail(exc), errors=_errors(exc.extra)), path)
    if exc.status_code == RouteNotFound.status:
        return problem_response(RouteNotFound(f"no route {request.method} {path}"), path)
    if exc.status_code == MethodNotAllowed.status:
        allowed = {"Allow": (exc.headers or {}).get("allow", "")}
        return problem_response(MethodNotAllowed(f"{request.method} is not allowed on {path}"), path, allowed)
    problem = ProblemDetails(
        type=f"about:blank#http_{exc.status_code}",
        title=exc.detail or "HTTP error",
        status=exc.status_code,
        detail=exc.detail or "",
        code=f"HTTP_{exc.status_code}",
        retryable=False,
        instance=path,
    )
    return Response(msgspec.json.encode(problem), status_code=exc.status_code, media_type=PROBLEM_JSON)


def _validation_detail(exc: HTTPException) -> str:
    detail = exc.detail or "invalid request"
    return detail if exc.extra else f"invalid body: {detail}"


def _errors(extra: object) -> list[dict[str, Any]] | None:
    return [dict(item) for item in extra if isinstance(item, dict)] if isinstance(extra, list) else None


def _database_fault(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.warning("api_database_error", path=request.url.path, error=repr(exc))
    return problem_response(DatabaseError("the sync database is unavailable"), request.url.path)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    AppError: _app_error,
    HTTPException: _http_error,
    **dict.fromkeys(DATABASE_FAULTS, _database_fault),
}


def _example(error: type[AppError]) -> Example:
    problem = problem_for(error(error.title), "/v1/...", None)
    return Example(summary=error.code, value=msgspec.to_builtins(problem))


def problems(*errors: type[AppError]) -> dict[int, ResponseSpec]:
    """The problem responses of an operation: the given ones and those of every guarded route."""
    by_status: dict[int, list[type[AppError]]] = {}
    every: tuple[type[AppError], ...] = (*errors, Unauthenticated, Forbidden, DatabaseError)
    for error in dict.fromkeys(every):
        by_status.setdefault(error.status, []).append(error)
    return {
        status: ResponseSpec(
            ProblemDetails,
            description=", ".join(error.code for error in found),
            media_type=PROBLEM_JSON,
            examples=[_example(error) for error in found],
        )
        for status, found in by_status.items()
    }

"""Every error leaves as RFC 9457 problem+json with a stable type, logged with the trace id."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandler, ExceptionHandlersMap
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter

from libs.kit.errors import AppError, NotFoundError, ProblemDetails, problem_for
from libs.kit.logging import get_logger
from services.profile.domain.errors import InvalidInput

log = get_logger(__name__)
PROBLEM_JSON = "application/problem+json"


class ErrorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.errors = Counter("http_errors", "HTTP error responses by code", ["code", "status"], registry=registry)


def _trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _respond(metrics: ErrorMetrics, problem: ProblemDetails, exc: Exception) -> Response[bytes]:
    metrics.errors.labels(problem.code, str(problem.status)).inc()
    return Response(
        msgspec.json.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers={**(_headers(problem) or {}), **_allow(exc)} or None,
    )


def _allow(exc: Exception) -> dict[str, str]:
    """A 405 names the methods the route has (RFC 9110): the framework puts them on its exception."""
    if isinstance(exc, HTTPException) and exc.status_code == 405 and (allowed := (exc.headers or {}).get("allow")):  # noqa: PLR2004
        return {"Allow": allowed}
    return {}


def _headers(problem: ProblemDetails) -> dict[str, str] | None:
    if problem.status == 401:  # noqa: PLR2004 - RFC 9110: a 401 names the scheme to use
        return {"WWW-Authenticate": 'Bearer realm="customer-profile"'}
    return {"Retry-After": "1"} if problem.retryable else None


def _app_error(request: Request[Any, Any, Any], exc: AppError) -> ProblemDetails:
    log_method = log.error if exc.status >= 500 else log.info  # noqa: PLR2004
    log_method("request_failed", code=exc.code, status=exc.status, path=request.url.path, detail=exc.detail)
    return problem_for(exc, request.url.path, _trace_id())


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def _field_errors(extra: object) -> list[dict[str, Any]] | None:
    """The framework's errors, with an unknown body field named by its key rather than ``data``."""
    if not isinstance(extra, list):
        return None
    errors: list[dict[str, Any]] = []
    for error in extra:
        if isinstance(error, dict) and error.get("key") == "data":
            match = _UNKNOWN_FIELD.search(str(error.get("message", "")))
            if match:
                error = {**error, "key": match.group(1)}  # noqa: PLW2901 - a renamed copy
        errors.append(error)
    return errors


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> ProblemDetails:
    errors = _field_errors(exc.extra)
    error = InvalidInput(exc.detail or "request body does not match the schema", errors=errors)
    return _app_error(request, error)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> ProblemDetails:
    """Framework errors (404 route, 405, 413...) in the same problem shape."""
    if exc.status_code == 404:  # noqa: PLR2004
        return _app_error(request, NotFoundError(f"no route for {request.method} {request.url.path}"))
    code = f"HTTP_{exc.status_code}"
    return ProblemDetails(
        type=f"about:blank#{code.lower()}",
        title=exc.detail or "HTTP error",
        status=exc.status_code,
        detail=exc.detail,
        code=code,
        retryable=False,
        instance=request.url.path,
        trace_id=_trace_id(),
    )


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> ProblemDetails:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    return ProblemDetails(
        type=AppError.problem_type(),
        title=AppError.title,
        status=500,
        detail="an unexpected error occurred; quote the trace id",
        code=AppError.code,
        retryable=False,
        instance=request.url.path,
        trace_id=_trace_id(),
    )


_PROBLEMS: dict[type[Exception], Callable[[Request[Any, Any, Any], Any], ProblemDetails]] = {
    AppError: _app_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}


def exception_handlers(metrics: ErrorMetrics) -> ExceptionHandlersMap:
    """The app's handlers: each error becomes its problem, counted in ``metrics``."""

    def handler(problem_of: Callable[[Request[Any, Any, Any], Any], ProblemDetails]) -> ExceptionHandler[Any]:
        def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
            return _respond(metrics, problem_of(request, exc), exc)

        return handle

    return {kind: handler(problem_of) for kind, problem_of in _PROBLEMS.items()}


__all__ = ["PROBLEM_JSON", "ErrorMetrics", "MediaType", "exception_handlers"]

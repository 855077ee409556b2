"""Errors on console pages: in words on an HTML page, never a stack trace or problem+json.

No session (or an expired one) sends the browser to the sign-in page and back afterwards;
a role that does not allow the page says which roles do. Every error is logged with its
code and counted in ``http_errors`` like the API's.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import ExceptionHandlersMap
from opentelemetry import trace

from libs.kit.errors import AppError
from libs.kit.logging import get_logger
from libs.kit.tokens import Forbidden, Unauthenticated
from services.profile.console.context import console_of
from services.profile.console.rendering import query, render, security_headers
from services.profile.console.session import LOGIN_PATH, READ, cleared_session_cookie, session_token
from services.profile.shared.web.problems import ErrorMetrics

log = get_logger(__name__)


def _trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _page(request: Request[Any, Any, Any], status: int, code: str, title: str, detail: str) -> Response[Any]:
    metrics: ErrorMetrics = console_of(request).error_metrics
    metrics.errors.labels(code, str(status)).inc()
    context = {"status": status, "code": code, "error_title": title, "detail": detail, "trace_id": _trace_id()}
    return security_headers(render(request, "error.html", context, title=title, status_code=status))


def _to_login(request: Request[Any, Any, Any], exc: Unauthenticated) -> Response[Any]:
    log.info("console_sign_in_required", path=request.url.path, reason=exc.detail)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    params: dict[str, str] = {"next": target if request.method == "GET" else "/console/"}
    if session_token(request):
        params["expired"] = "1"  # a session the verifier no longer accepts
    redirect = Redirect(LOGIN_PATH + query(params), status_code=303)
    redirect.cookies.append(cleared_session_cookie(console_of(request).settings))
    return security_headers(redirect)


def app_error_page(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    if isinstance(exc, Unauthenticated):
        return _to_login(request, exc)
    level = log.error if exc.status >= 500 else log.info  # noqa: PLR2004
    level("console_request_failed", code=exc.code, status=exc.status, path=request.url.path, detail=exc.detail)
    detail = exc.detail
    if isinstance(exc, Forbidden):
        detail = f"Your roles do not allow this: {exc.detail}."
    return _page(request, exc.status, exc.code, exc.title, detail)


def validation_page(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    fields = [str(e.get("key") or e.get("message")) for e in exc.extra or [] if isinstance(e, dict)]
    detail = "Some values in the address are not valid" + (f": {', '.join(fields)}" if fields else "") + "."
    log.info("console_bad_request", path=request.url.path, fields=fields)
    return _page(request, 400, "VALIDATION", "Invalid request", detail)


def http_error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 404:  # noqa: PLR2004
        return _page(request, 404, "NOT_FOUND", "Not found", f"There is no page at {request.url.path}.")
    log.info("console_http_error", path=request.url.path, status=exc.status_code)
    return _page(request, exc.status_code, f"HTTP_{exc.status_code}", "Request refused", exc.detail or "")


def unexpected_error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("console_unhandled_error", path=request.url.path, error_type=type(exc).__name__, exc_info=exc)
    detail = "Something went wrong on our side. Nothing was changed unless a page said so; quote the trace id."
    return _page(request, 500, "INTERNAL", "Unexpected error", detail)


@get("/{unknown:path}", guards=READ, include_in_schema=False)
async def unknown_page(unknown: FromPath[str]) -> None:
    """Any other path under /console: the console's own 404 page, not the API's problem+json."""
    raise NotFoundException(f"no console page {unknown}")


CONSOLE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    AppError: app_error_page,
    ValidationException: validation_page,
    HTTPException: http_error_page,
    Exception: unexpected_error_page,
}

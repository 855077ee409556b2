"""JSON and RFC 9457 problem-details responses for the connector's aiohttp API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from libs.kit.errors import AppError, DatabaseError, NotFoundError, ProblemDetails, problem_for
from libs.kit.logging import get_logger
from services.sync_connector.db_faults import DATABASE_FAULTS

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouteNotFound(NotFoundError):
    code = "ROUTE_NOT_FOUND"
    title = "No such route"


def json_response(payload: object, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), status=status, content_type=content_type)


def problem_response(error: AppError, request: web.Request) -> web.Response:
    problem: ProblemDetails = problem_for(error, request.path, None)
    return json_response(problem, error.status, "application/problem+json")


@web.middleware
async def problem_details(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Typed errors become problem details; a database failure is a retryable 503."""
    try:
        return await handler(request)
    except AppError as error:
        return problem_response(error, request)
    except web.HTTPNotFound:
        return problem_response(RouteNotFound(f"no route {request.method} {request.path}"), request)
    except DATABASE_FAULTS as exc:
        log.warning("api_database_error", path=request.path, error=repr(exc))
        return problem_response(DatabaseError("the sync database is unavailable"), request)

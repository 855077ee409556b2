"""The connector's small HTTP API: health, readiness, metrics, sync records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.errors import AppError, DatabaseError, ProblemDetails, ValidationError, problem_for
from libs.kit.logging import get_logger
from services.sync_connector.records import SyncUnitOfWork

log = get_logger(__name__)

ENGINE_KEY = web.AppKey("engine", AsyncEngine)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
CONSUMERS_STARTED_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("consumers_started")
READY_DB_TIMEOUT_S = 2.0


def _json(payload: object, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=msgspec.json.encode(payload), status=status, content_type=content_type)


def _problem(error: AppError, request: web.Request) -> web.Response:
    problem: ProblemDetails = problem_for(error, request.path, None)
    return _json(problem, error.status, "application/problem+json")


async def _health(_: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    checks = {"database": False, "consumers": request.app[CONSUMERS_STARTED_KEY]()}
    try:
        async with asyncio.timeout(READY_DB_TIMEOUT_S), request.app[ENGINE_KEY].connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness_database_failed", error=repr(exc))
    return _json({"ready": all(checks.values()), "checks": checks}, 200 if all(checks.values()) else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _sync_records(request: web.Request) -> web.Response:
    customer_id = request.query.get("customerId", "").strip()
    if not customer_id:
        return _problem(ValidationError("query parameter customerId is required"), request)
    try:
        async with SyncUnitOfWork(request.app[ENGINE_KEY]) as uow:
            records = await uow.records.list_for_customer(customer_id)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("sync_records_query_failed", error=repr(exc))
        return _problem(DatabaseError("sync records are unavailable"), request)
    return _json(records)


def create_api(
    engine: AsyncEngine, registry: CollectorRegistry, consumers_started: Callable[[], bool]
) -> web.Application:
    app = web.Application()
    app[ENGINE_KEY] = engine
    app[REGISTRY_KEY] = registry
    app[CONSUMERS_STARTED_KEY] = consumers_started
    app.router.add_routes(
        [
            web.get("/health", _health),
            web.get("/ready", _ready),
            web.get("/metrics", _metrics),
            web.get("/v1/sync-records", _sync_records),
        ]
    )
    return app

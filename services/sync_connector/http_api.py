"""The connector's small HTTP API: health, readiness, metrics, and the admin routes (``admin_http``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.logging import get_logger
from libs.kit.ops_server import ReadinessCheck
from libs.kit.tokens import TokenVerifier
from services.sync_connector.admin import SyncAdmin
from services.sync_connector.admin_http import ADMIN_KEY, NOTIFICATION_ADMIN_KEY, admin_routes, notification_routes
from services.sync_connector.admin_insight import insight_routes
from services.sync_connector.admin_journey import journey_routes
from services.sync_connector.auth import authentication
from services.sync_connector.http_support import json_response, problem_details
from services.sync_connector.notify.admin import NotificationAdmin

log = get_logger(__name__)

ENGINE_KEY = web.AppKey("engine", AsyncEngine)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
CONSUMERS_STARTED_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("consumers_started")
BROKER_CHECK_KEY: web.AppKey[ReadinessCheck] = web.AppKey("broker_check")
READY_DB_TIMEOUT_S = 2.0


async def _health(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    checks = {
        "database": False,
        "broker": await request.app[BROKER_CHECK_KEY](),
        "consumers": request.app[CONSUMERS_STARTED_KEY](),
    }
    try:
        async with asyncio.timeout(READY_DB_TIMEOUT_S), request.app[ENGINE_KEY].connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness_database_failed", error=repr(exc))
    return json_response({"ready": all(checks.values()), "checks": checks}, 200 if all(checks.values()) else 503)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_api(
    engine: AsyncEngine,
    registry: CollectorRegistry,
    consumers_started: Callable[[], bool],
    admin: SyncAdmin,
    broker_reachable: ReadinessCheck,
    *,
    verifier: TokenVerifier,
    notification_admin: NotificationAdmin | None = None,
) -> web.Application:
    app = web.Application(middlewares=[problem_details, authentication(verifier)])
    app[ENGINE_KEY] = engine
    app[REGISTRY_KEY] = registry
    app[CONSUMERS_STARTED_KEY] = consumers_started
    app[BROKER_CHECK_KEY] = broker_reachable
    app[ADMIN_KEY] = admin
    app.router.add_routes(
        [
            web.get("/health", _health),
            web.get("/ready", _ready),
            web.get("/metrics", _metrics),
            *admin_routes(),
            *insight_routes(engine, registry),
            *journey_routes(engine),
        ]
    )
    if notification_admin is not None:
        app[NOTIFICATION_ADMIN_KEY] = notification_admin
        app.router.add_routes(notification_routes())
    return app

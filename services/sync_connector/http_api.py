"""The connector's HTTP API (Litestar): health, readiness, metrics, the admin routes and their OpenAPI document.

``create_api`` builds the app; ``runtime.py`` serves it in the connector's own event loop. The
document is at ``/schema/openapi.json`` (a viewer at ``/schema``), public like the three
operational routes; every other route needs a bearer token (``auth.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, OpenAPI, Parameter, Schema
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connector_admin import Health, Readiness, ReadinessChecks
from libs.kit.logging import get_logger
from libs.kit.openapi import BEARER, BEARER_SCHEME, closed_structs, operations, without_null
from libs.kit.ops_server import ReadinessCheck
from libs.kit.tokens import TokenVerifier
from services.sync_connector.admin import SyncAdmin
from services.sync_connector.admin_http import notification_routes, sync_routes
from services.sync_connector.admin_insight import insight_routes
from services.sync_connector.admin_journey import journey_routes
from services.sync_connector.admin_notify.http import admin_notification_routes
from services.sync_connector.http_support import EXCEPTION_HANDLERS
from services.sync_connector.notify.admin import NotificationAdmin

log = get_logger(__name__)
READY_DB_TIMEOUT_S = 2.0
MAX_REQUEST_BODY_BYTES = 64 * 1024  # the largest body is a bulk re-drive's three short fields
# The framework documents a 400 for any route with parameters; this API answers those refusals with 422.
FRAMEWORK_BAD_REQUEST = "400"


def ops_routes(
    engine: AsyncEngine, registry: CollectorRegistry, consumers_started: Callable[[], bool], broker: ReadinessCheck
) -> list[HTTPRouteHandler]:
    """``/health``, ``/ready`` and ``/metrics``: public, for probes and scrapers."""

    @get("/health", operation_id="health", summary="Alive")
    async def health() -> Health:
        return Health("ok")

    @get(
        "/ready",
        operation_id="ready",
        summary="Ready: the database answers, the broker is reachable and every consumer started",
        responses={503: ResponseSpec(Readiness, description="Not ready; checks says what is missing")},
    )
    async def ready() -> Response[Readiness]:
        checks = ReadinessChecks(database=False, broker=await broker(), consumers=consumers_started())
        try:
            async with asyncio.timeout(READY_DB_TIMEOUT_S), engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks = ReadinessChecks(database=True, broker=checks.broker, consumers=checks.consumers)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            log.warning("readiness_database_failed", error=repr(exc))
        is_ready = checks.database and checks.broker and checks.consumers
        return Response(Readiness(is_ready, checks), status_code=200 if is_ready else 503)

    @get("/metrics", operation_id="metrics", summary="Prometheus metrics", media_type=MediaType.TEXT)
    async def metrics() -> Response[bytes]:
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [health, ready, metrics]


def create_api(
    engine: AsyncEngine,
    registry: CollectorRegistry,
    consumers_started: Callable[[], bool],
    admin: SyncAdmin,
    broker_reachable: ReadinessCheck,
    *,
    verifier: TokenVerifier,
    notification_admin: NotificationAdmin | None = None,
) -> Litestar:
    routes = [
        *ops_routes(engine, registry, consumers_started, broker_reachable),
        *sync_routes(admin),
        *insight_routes(engine, registry),
        *journey_routes(engine),
        *admin_notification_routes(engine),
        *(notification_routes(notification_admin) if notification_admin is not None else []),
    ]
    app = Litestar(
        # Our JSON logging (libs.kit.logging) stays: Litestar's default would replace the root handler
        # with its own plain-text one, written from a queue thread that splits our lines.
        logging_config=None,
        route_handlers=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Sync-connector admin API",
            version="1.0.0",
            path="/schema",
            description=(
                "Delivery records of the external systems and the customer notifications: list, inspect, re-drive. "
                "Bearer tokens are the profile service's (Ed25519 JWTs); each operation names the roles it admits."
            ),
            components=Components(security_schemes={BEARER: BEARER_SCHEME}),
        ),
        request_max_body_size=MAX_REQUEST_BODY_BYTES,
        state=State({"token_verifier": verifier}),
    )
    _finish_document(app.openapi_schema, routes)
    return app


def _finish_document(document: OpenAPI, routes: list[HTTPRouteHandler]) -> None:
    """What the framework leaves out of the document or states otherwise than the API behaves."""
    schemas = document.components.schemas if document.components else {}
    for handler in routes:
        body = handler.parsed_fn_signature.parameters.get("data")
        for struct in closed_structs(body.annotation) if body is not None else ():
            schemas[struct.__name__].additional_properties = False  # it refuses unknown fields (422)
    for path_item in (document.paths or {}).values():
        for operation in operations(path_item):
            if operation.responses is not None:
                operation.responses.pop(FRAMEWORK_BAD_REQUEST, None)
            for parameter in operation.parameters or []:
                if isinstance(parameter, Parameter) and isinstance(parameter.schema, Schema) and not parameter.required:
                    parameter.schema = without_null(parameter.schema)  # an absent parameter, never a null one

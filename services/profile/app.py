"""The composition root: ``create_app(settings)`` builds everything from settings."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from libs.kit.logging import configure_logging
from libs.kit.telemetry import configure_tracing, records_spans
from libs.kit.tokens import TokenVerifier
from services.profile.access.audit_routes import AuditLogController
from services.profile.access.auth import assert_every_route_guarded, authentication_middleware
from services.profile.admin_signals.routes import InternalSignalController
from services.profile.backups.routes import BackupController
from services.profile.bootstrap import build_services
from services.profile.console.wiring import ConsoleParts
from services.profile.customers.contact_routes import InternalContactController
from services.profile.customers.routes import CustomerController, RecycleBinController
from services.profile.dependencies import profile_dependencies
from services.profile.name_changes.routes import ApplicationController, ProfileUpdateController
from services.profile.openapi_document import finish_document
from services.profile.outbox_admin.routes import OutboxAdminController
from services.profile.settings import ProfileSettings, settings_from_env
from services.profile.shared.web.allow import point_options_at_their_routes
from services.profile.shared.web.idempotency import idempotency_middleware
from services.profile.shared.web.input_guard import input_guard_middleware
from services.profile.shared.web.ops import health, metrics, ready
from services.profile.shared.web.problems import ErrorMetrics, exception_handlers
from services.profile.shared.web.trace_header import add_trace_id_header
from services.profile.shared.web.trace_redaction import redact_url_attributes

MAX_REQUEST_BODY_BYTES = 256 * 1024
TOKEN_CACHE_SIZE = 1024  # verified tokens remembered until they expire (one Ed25519 check each)


def create_app(settings: ProfileSettings) -> Litestar:
    configure_logging(settings.service_name, settings.log_level)
    tracer_provider = configure_tracing(settings.service_name)
    registry = CollectorRegistry()
    scrape_registry = registry
    if settings.http.workers > 1:
        # Each worker writes its samples to files under PROMETHEUS_MULTIPROC_DIR (set by ``serve``
        # before the workers start); a scrape, served by any worker, adds up those of all of them.
        scrape_registry = CollectorRegistry()
        MultiProcessCollector(scrape_registry)  # type: ignore[no-untyped-call]
    # Built now, so missing or malformed keys stop the start instead of failing requests later; the
    # engine opens no connection before the first request.
    services = build_services(settings, registry)
    engine = services.adapters.engine
    error_metrics = ErrorMetrics(registry)
    token_verifier = TokenVerifier(settings.auth, cache_size=TOKEN_CACHE_SIZE)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if records_spans(tracer_provider):  # its hooks only make spans: ~3% of an approval's CPU for nothing
            SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, tracer_provider=tracer_provider)
        try:
            yield
        finally:
            await engine.dispose()
            tracer_provider.shutdown()

    console = ConsoleParts(settings, services, registry, tracer_provider, token_verifier, error_metrics)
    app = Litestar(
        # Our JSON logging (libs.kit.logging) stays: Litestar's default would replace the root handler
        # with its own plain-text one, written from a queue thread that splits our lines.
        logging_config=None,
        route_handlers=[
            CustomerController,
            ApplicationController,
            ProfileUpdateController,
            OutboxAdminController,
            InternalContactController,
            InternalSignalController,
            RecycleBinController,
            BackupController,
            AuditLogController,
            health,
            ready,
            metrics,
            *console.routes(),
        ],
        dependencies={
            **profile_dependencies(services, settings),
            "scrape_registry": Provide(lambda: scrape_registry, sync_to_thread=False),
        },
        # Authentication first: the idempotency middleware authorizes before it replays anything.
        middleware=[
            authentication_middleware(token_verifier),
            input_guard_middleware(MAX_REQUEST_BODY_BYTES, error_metrics),
            idempotency_middleware(
                MAX_REQUEST_BODY_BYTES, services.adapters.idempotency_store, services.ledger_metrics, error_metrics
            ),
        ],
        exception_handlers=exception_handlers(error_metrics),
        before_send=[add_trace_id_header],
        lifespan=[lifespan, console.lifespan],
        template_config=console.template_config(),
        plugins=[
            OpenTelemetryPlugin(
                OpenTelemetryConfig(
                    tracer_provider=tracer_provider,
                    server_request_hook_handler=redact_url_attributes,
                    # One server span per request; a child span per ASGI message tells nothing more.
                    exclude_spans=["receive", "send"],
                )
            )
        ],
        openapi_config=OpenAPIConfig(title="Customer profile service", version="1.0.0", path="/schema"),
        request_max_body_size=MAX_REQUEST_BODY_BYTES,
    )
    assert_every_route_guarded(app)
    finish_document(
        app, max_batch_size=settings.http.max_batch_size, max_outbox_page=settings.relay.admin_max_page_size
    )
    point_options_at_their_routes(app)
    return app


def app_from_env() -> Litestar:
    """The app of one of several worker processes (``serve`` with ``PROFILE_HTTP_WORKERS`` > 1).

    A worker is a fresh interpreter: it builds its settings from the environment at its start.
    """
    return create_app(settings_from_env(os.environ))

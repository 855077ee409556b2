"""The composition root: ``create_app(settings)`` builds everything from settings."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from libs.kit.db import make_engine
from libs.kit.logging import configure_logging
from libs.kit.telemetry import configure_tracing, records_spans
from libs.kit.tokens import TokenVerifier
from services.profile.access.auth import assert_every_route_guarded, authentication_middleware
from services.profile.admin_signals.routes import InternalSignalController
from services.profile.admin_signals.service import AdminSignalService
from services.profile.admin_signals.sql import SqlAdminSignals
from services.profile.console.wiring import console_lifespan, console_routes, console_template_config
from services.profile.customers.contact_routes import InternalContactController
from services.profile.customers.routes import CustomerController
from services.profile.dependencies import provide_actor, provide_customers, provide_name_changes
from services.profile.ledger_wiring import LEDGER_ROUTES, install_ledger_services, ledger_dependencies
from services.profile.name_changes.routes import ApplicationController, ProfileUpdateController
from services.profile.name_changes.service import NameChangeService
from services.profile.outbox_admin.routes import OutboxAdminController
from services.profile.outbox_admin.wiring import build_outbox_admin_service
from services.profile.settings import ProfileSettings, settings_from_env
from services.profile.shared.metrics import ProfileMetrics
from services.profile.shared.storage.contact_crypto import ContactProtector
from services.profile.shared.storage.unit_of_work import SqlUnitOfWorkFactory
from services.profile.shared.web.idempotency import idempotency_middleware
from services.profile.shared.web.input_guard import input_guard_middleware
from services.profile.shared.web.ops import health, metrics, ready
from services.profile.shared.web.problems import EXCEPTION_HANDLERS, ErrorMetrics
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
    # Built now, so missing or malformed keys stop the start instead of failing requests later.
    protector = ContactProtector.from_settings(settings.crypto)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = make_engine(settings.database, ping_after_idle_s=settings.http.db_ping_after_idle_s)
        if records_spans(tracer_provider):  # its hooks only make spans: ~3% of an approval's CPU for nothing
            SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, tracer_provider=tracer_provider)
        uow_factory = SqlUnitOfWorkFactory(engine, protector)
        app.state.engine = engine
        install_ledger_services(app.state, uow_factory, settings.ledger, registry)
        app.state.name_change_service = NameChangeService(uow_factory, ProfileMetrics(registry))
        app.state.outbox_admin_service = build_outbox_admin_service(engine, settings.relay, registry)
        app.state.admin_signal_service = AdminSignalService(SqlAdminSignals(engine), app.state.outbox_admin_service)
        try:
            yield
        finally:
            await engine.dispose()
            tracer_provider.shutdown()

    def on_app_init(config: AppConfig) -> AppConfig:
        config.state.settings = settings
        config.state.registry = registry
        config.state.scrape_registry = scrape_registry
        config.state.error_metrics = ErrorMetrics(registry)
        config.state.token_verifier = TokenVerifier(settings.auth, cache_size=TOKEN_CACHE_SIZE)
        return config

    app = Litestar(
        route_handlers=[
            CustomerController,
            ApplicationController,
            ProfileUpdateController,
            OutboxAdminController,
            InternalContactController,
            InternalSignalController,
            *LEDGER_ROUTES,
            health,
            ready,
            metrics,
            *console_routes(settings),
        ],
        dependencies={
            "actor": Provide(provide_actor, sync_to_thread=False),
            "customers": Provide(provide_customers, sync_to_thread=False),
            "name_changes": Provide(provide_name_changes, sync_to_thread=False),
            **ledger_dependencies(),
        },
        # Authentication first: the idempotency middleware authorizes before it replays anything.
        middleware=[
            authentication_middleware,
            input_guard_middleware(MAX_REQUEST_BODY_BYTES),
            idempotency_middleware(MAX_REQUEST_BODY_BYTES),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[add_trace_id_header],
        lifespan=[lifespan, console_lifespan(settings, registry, tracer_provider)],
        template_config=console_template_config(settings),
        on_app_init=[on_app_init],
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
    return app


def app_from_env() -> Litestar:
    """The app of one of several worker processes (``serve`` with ``PROFILE_HTTP_WORKERS`` > 1).

    A worker is a fresh interpreter: it builds its settings from the environment at its start.
    """
    return create_app(settings_from_env(os.environ))

"""Composition of the console: its routes under ``/console``, static files, templates and the
collaborators it needs at start-up (the connector client, the outbox backlog reader)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import InitVar, dataclass, field
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from libs.kit.tokens import TokenVerifier
from libs.outbox.backlog import OutboxBacklogReader
from services.profile.bootstrap import ProfileServices, SqlAdapters
from services.profile.console import (
    admin_notifications,
    audit,
    backups,
    customer_records,
    customer_versions,
    customers,
    errors,
    journey,
    outbox,
    overview,
    sign_in,
    sync,
)
from services.profile.console.connector_client import ConnectorClient, ConnectorMetrics, make_connector_session
from services.profile.console.context import STATE_KEY, ConsoleContext
from services.profile.console.errors import CONSOLE_EXCEPTION_HANDLERS
from services.profile.console.metrics import ConsoleMetrics
from services.profile.console.rendering import STATIC, security_headers, template_config
from services.profile.console.session import CONSOLE_PATH
from services.profile.settings import ProfileSettings
from services.profile.shared.storage.tables import SCHEMA
from services.profile.shared.web.problems import ErrorMetrics

CONSOLE_HANDLERS = (
    sign_in.login_page,
    sign_in.login,
    sign_in.logout,
    overview.overview,
    overview.overview_panel,
    outbox.outbox_list,
    outbox.confirm_redrive,
    outbox.redrive,
    outbox.outbox_entry,
    sync.sync_list,
    sync.confirm_retry_failed,
    sync.retry_failed,
    sync.sync_record,
    sync.confirm_retry,
    sync.retry,
    customers.customer_search,
    customers.customer_profile,
    customers.confirm_delete,
    customers.delete_customer,
    customers.recycle_bin,
    customers.confirm_restore,
    customers.restore_customer,
    customers.applications,
    customers.confirm_reapply,
    customers.reapply,
    *customer_records.HANDLERS,
    *customer_versions.HANDLERS,
    journey.journey_lookup,
    journey.customer_journey,
    backups.backup_list,
    backups.create_backup,
    backups.backup_detail,
    backups.dry_run,
    backups.confirm_restore,
    backups.restore,
    audit.audit_log,
    admin_notifications.admin_notification_list,
    admin_notifications.admin_notification_detail,
    errors.unknown_page,
)


@dataclass(eq=False)
class ConsoleParts:
    """The console's routes, templates, start-up and context, on the profile's services."""

    settings: ProfileSettings
    services: InitVar[ProfileServices[SqlAdapters]]
    registry: CollectorRegistry
    tracer_provider: trace.TracerProvider
    token_verifier: InitVar[TokenVerifier]
    error_metrics: InitVar[ErrorMetrics]
    context: ConsoleContext = field(init=False)
    _backlog: OutboxBacklogReader = field(init=False)
    _connector: ConnectorClient | None = field(init=False, default=None)  # its aiohttp session opens in the lifespan

    def __post_init__(
        self, services: ProfileServices[SqlAdapters], token_verifier: TokenVerifier, error_metrics: ErrorMetrics
    ) -> None:
        self.context = ConsoleContext(
            settings=self.settings.console,
            recycle_bin_retention_days=self.settings.ledger.recycle_bin_retention_days,
            metrics=ConsoleMetrics(self.registry),
            error_metrics=error_metrics,
            token_verifier=token_verifier,
        )
        self._backlog = OutboxBacklogReader(services.adapters.engine, SCHEMA)

    def routes(self) -> list[Router]:
        if not self.settings.console.enabled:
            return []

        # Plain functions, not bound methods: Litestar deep-copies a router, and with it a method's object.
        def provide_connector() -> ConnectorClient:
            if self._connector is None:
                msg = "the console's connector client is made when the app starts"
                raise RuntimeError(msg)
            return self._connector

        backlog = self._backlog
        pages = Router(
            path=CONSOLE_PATH,
            route_handlers=list(CONSOLE_HANDLERS),
            dependencies={
                "connector": Provide(provide_connector, sync_to_thread=False),
                "outbox_backlog": Provide(lambda: backlog, sync_to_thread=False),
            },
            exception_handlers=CONSOLE_EXCEPTION_HANDLERS,
            after_request=security_headers,
            include_in_schema=False,
        )
        static = create_static_files_router(
            path=f"{CONSOLE_PATH}/static",
            directories=[STATIC],
            name="console-static",
            opt={"public": True},
            cache_control=CacheControlHeader(max_age=300),
            include_in_schema=False,
        )
        return [pages, static]

    def template_config(self) -> TemplateConfig[Any] | None:
        return template_config() if self.settings.console.enabled else None

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        app.state[STATE_KEY] = self.context
        settings = self.settings.connector
        session = make_connector_session(settings, self.tracer_provider)
        self._connector = ConnectorClient(session, settings, ConnectorMetrics(self.registry))
        try:
            yield
        finally:
            self._connector = None
            await session.close()

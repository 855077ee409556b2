"""Composition of the console: its routes under ``/console``, static files, templates and the
collaborators it needs at start-up (the connector client, the outbox backlog reader)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from libs.outbox.backlog import OutboxBacklogReader
from services.profile.console import (
    admin_notifications,
    audit,
    backups,
    customer_records,
    customers,
    errors,
    journey,
    outbox,
    overview,
    sign_in,
    sync,
)
from services.profile.console.connector_client import ConnectorClient, ConnectorMetrics, make_connector_session
from services.profile.console.errors import CONSOLE_EXCEPTION_HANDLERS
from services.profile.console.metrics import ConsoleMetrics
from services.profile.console.rendering import STATIC, security_headers, template_config
from services.profile.console.session import CONSOLE_PATH
from services.profile.outbox_admin.routes import provide_outbox_admin
from services.profile.settings import ProfileSettings
from services.profile.shared.storage.tables import SCHEMA

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


def provide_connector(state: State) -> ConnectorClient:
    client: ConnectorClient = state.connector_client
    return client


def provide_outbox_backlog(state: State) -> OutboxBacklogReader:
    reader: OutboxBacklogReader = state.outbox_backlog
    return reader


def console_routes(settings: ProfileSettings) -> list[Router]:
    if not settings.console.enabled:
        return []
    pages = Router(
        path=CONSOLE_PATH,
        route_handlers=list(CONSOLE_HANDLERS),
        dependencies={
            "connector": Provide(provide_connector, sync_to_thread=False),
            "outbox_backlog": Provide(provide_outbox_backlog, sync_to_thread=False),
            "outbox_admin": Provide(provide_outbox_admin, sync_to_thread=False),
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


def console_template_config(settings: ProfileSettings) -> TemplateConfig[Any] | None:
    return template_config() if settings.console.enabled else None


def console_lifespan(
    settings: ProfileSettings, registry: CollectorRegistry, tracer_provider: trace.TracerProvider
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Runs after the app's own lifespan has put the database engine on the state."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.console_metrics = ConsoleMetrics(registry)
        app.state.outbox_backlog = OutboxBacklogReader(app.state.engine, SCHEMA)
        session = make_connector_session(settings.connector, tracer_provider)
        app.state.connector_client = ConnectorClient(session, settings.connector, ConnectorMetrics(registry))
        try:
            yield
        finally:
            await session.close()

    return lifespan

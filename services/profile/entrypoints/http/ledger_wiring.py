"""Composition of the customer ledger: its services on the app state, routes, dependencies, middleware."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.datastructures import State
from litestar.di import Provide
from prometheus_client import CollectorRegistry

from services.profile.adapters.backups import PgRestoreLock
from services.profile.adapters.idempotency import SqlIdempotencyStore
from services.profile.adapters.unit_of_work import SqlUnitOfWorkFactory
from services.profile.entrypoints.http.customer_routes import RecycleBinController
from services.profile.entrypoints.http.dependencies import LEDGER_DEPENDENCIES
from services.profile.entrypoints.http.ledger_routes import AuditLogController, BackupController
from services.profile.service_layer.audit import AuditLogService
from services.profile.service_layer.backups import BackupService
from services.profile.service_layer.customers import CustomerService
from services.profile.service_layer.ledger_settings import LedgerSettings
from services.profile.service_layer.metrics import LedgerMetrics
from services.profile.service_layer.name_changes import utc_now
from services.profile.service_layer.restore import RestoreService
from services.profile.service_layer.versions import VersionService

LEDGER_ROUTES = (RecycleBinController, BackupController, AuditLogController)


def install_ledger_services(
    state: State, uow_factory: SqlUnitOfWorkFactory, settings: LedgerSettings, registry: CollectorRegistry
) -> None:
    """Called from the lifespan, once the engine exists."""
    engine = uow_factory.engine
    metrics = LedgerMetrics(registry)
    state.ledger_metrics = metrics
    state.customer_service = CustomerService(uow_factory, metrics)
    state.version_service = VersionService(uow_factory, metrics)
    state.backup_service = BackupService(uow_factory, metrics)
    state.restore_service = RestoreService(
        uow_factory,
        PgRestoreLock(engine),
        metrics,
        chunk_size=settings.restore_chunk_size,
        max_differences=settings.restore_max_differences,
    )
    state.audit_log_service = AuditLogService(uow_factory)
    state.idempotency_store = SqlIdempotencyStore(
        engine,
        uow_factory.protector,
        ttl=timedelta(seconds=settings.idempotency_ttl_s),
        lease=timedelta(seconds=settings.idempotency_lease_s),
        clock=utc_now,
    )


def ledger_dependencies() -> dict[str, Any]:
    return {name: Provide(provider, sync_to_thread=False) for name, provider in LEDGER_DEPENDENCIES.items()}

"""Composition of the customer ledger: its services on the app state, routes, dependencies, middleware."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.datastructures import State
from litestar.di import Provide
from prometheus_client import CollectorRegistry

from services.profile.access.audit_routes import AuditLogController
from services.profile.backups.restore import RestoreService
from services.profile.backups.routes import BackupController
from services.profile.backups.service import BackupService
from services.profile.backups.sql import PgRestoreLock
from services.profile.customers.routes import RecycleBinController
from services.profile.customers.service import CustomerService
from services.profile.customers.versions import VersionService
from services.profile.dependencies import LEDGER_DEPENDENCIES
from services.profile.name_changes.service import utc_now
from services.profile.shared.audit import AuditLogService
from services.profile.shared.ledger_settings import LedgerSettings
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.storage.idempotency import SqlIdempotencyStore
from services.profile.shared.storage.unit_of_work import SqlUnitOfWorkFactory

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

"""The one place that builds the profile's use cases: ``build_services(settings)`` on PostgreSQL for the
HTTP app, the CLIs and the integration tests; ``assemble_services(adapters)`` on any adapters (the unit
tests' in-memory fakes). Each use case is built once; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db import make_engine
from libs.outbox.settings import RelaySettings
from services.profile.admin_signals.service import AdminSignalQueue, AdminSignalService
from services.profile.admin_signals.sql import SqlAdminSignals
from services.profile.backups.maintenance import MaintenanceService
from services.profile.backups.restore import RestoreService
from services.profile.backups.service import BackupService
from services.profile.backups.sql import PgRestoreLock
from services.profile.customers.service import CustomerService
from services.profile.customers.versions import VersionService
from services.profile.name_changes.service import NameChangeService
from services.profile.outbox_admin.service import (
    OutboxAdminLimits,
    OutboxAdminMetrics,
    OutboxAdminService,
    OutboxAdminUnitOfWorkFactory,
)
from services.profile.outbox_admin.sql import SqlOutboxAdminUnitOfWorkFactory
from services.profile.settings import ProfileSettings
from services.profile.shared.audit import AuditLogService
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.ledger_settings import LedgerSettings
from services.profile.shared.metrics import LedgerMetrics, ProfileMetrics
from services.profile.shared.ports import RestoreLock, UnitOfWorkFactory
from services.profile.shared.storage.contact_crypto import ContactProtector
from services.profile.shared.storage.idempotency import SqlIdempotencyStore
from services.profile.shared.storage.unit_of_work import SqlUnitOfWorkFactory


@dataclass(frozen=True, kw_only=True)
class ProfileAdapters:
    """What the use cases run on, behind their ports."""

    uow_factory: UnitOfWorkFactory
    restore_lock: RestoreLock
    outbox_admin_uow_factory: OutboxAdminUnitOfWorkFactory
    admin_signal_queue: AdminSignalQueue
    clock: Clock = utc_now


@dataclass(frozen=True, kw_only=True)
class SqlAdapters(ProfileAdapters):
    """The PostgreSQL adapters, and what only the HTTP app needs of the database besides them."""

    engine: AsyncEngine
    idempotency_store: SqlIdempotencyStore


A = TypeVar("A", bound=ProfileAdapters)


@dataclass(frozen=True)
class ProfileServices(Generic[A]):
    """The profile's use cases, each built once, and the adapters they run on."""

    adapters: A
    name_changes: NameChangeService
    customers: CustomerService
    versions: VersionService
    backups: BackupService
    restores: RestoreService
    maintenance: MaintenanceService
    audit_log: AuditLogService
    outbox_admin: OutboxAdminService
    admin_signals: AdminSignalService
    ledger_metrics: LedgerMetrics


def assemble_services(
    adapters: A,
    registry: CollectorRegistry,
    ledger: LedgerSettings | None = None,
    outbox_limits: OutboxAdminLimits | None = None,
) -> ProfileServices[A]:
    ledger = ledger or LedgerSettings()
    uow, clock = adapters.uow_factory, adapters.clock
    metrics = LedgerMetrics(registry)
    backups = BackupService(uow, metrics, clock)
    outbox_admin = _outbox_admin(adapters.outbox_admin_uow_factory, outbox_limits, registry, clock)
    return ProfileServices(
        adapters=adapters,
        name_changes=NameChangeService(uow, ProfileMetrics(registry), clock),
        customers=CustomerService(uow, metrics, clock),
        versions=VersionService(uow, metrics, clock),
        backups=backups,
        restores=RestoreService(
            uow,
            adapters.restore_lock,
            metrics,
            chunk_size=ledger.restore_chunk_size,
            max_differences=ledger.restore_max_differences,
            clock=clock,
        ),
        maintenance=MaintenanceService(uow, backups, ledger, metrics, clock),
        audit_log=AuditLogService(uow),
        outbox_admin=outbox_admin,
        admin_signals=AdminSignalService(adapters.admin_signal_queue, outbox_admin),
        ledger_metrics=metrics,
    )


def _outbox_admin(
    uow_factory: OutboxAdminUnitOfWorkFactory,
    limits: OutboxAdminLimits | None,
    registry: CollectorRegistry,
    clock: Clock = utc_now,
) -> OutboxAdminService:
    return OutboxAdminService(uow_factory, limits or OutboxAdminLimits(), OutboxAdminMetrics(registry), clock)


def _outbox_limits(relay: RelaySettings) -> OutboxAdminLimits:
    return OutboxAdminLimits(max_page_size=relay.admin_max_page_size, redrive_max_rows=relay.redrive_max_rows)


def sql_adapters(settings: ProfileSettings) -> SqlAdapters:
    """Missing or malformed contact keys raise here: no adapter runs without them."""
    engine = make_engine(settings.database, ping_after_idle_s=settings.http.db_ping_after_idle_s)
    protector = ContactProtector.from_settings(settings.crypto)
    ledger = settings.ledger
    return SqlAdapters(
        uow_factory=SqlUnitOfWorkFactory(engine, protector),
        restore_lock=PgRestoreLock(engine),
        outbox_admin_uow_factory=SqlOutboxAdminUnitOfWorkFactory(engine),
        admin_signal_queue=SqlAdminSignals(engine),
        engine=engine,
        idempotency_store=SqlIdempotencyStore(
            engine,
            protector,
            ttl=timedelta(seconds=ledger.idempotency_ttl_s),
            lease=timedelta(seconds=ledger.idempotency_lease_s),
            clock=utc_now,
        ),
    )


def build_services(
    settings: ProfileSettings, registry: CollectorRegistry | None = None
) -> ProfileServices[SqlAdapters]:
    """The engine connects lazily: building opens no connection; ``close`` disposes of the pool."""
    adapters = sql_adapters(settings)
    return assemble_services(adapters, registry or CollectorRegistry(), settings.ledger, _outbox_limits(settings.relay))


@asynccontextmanager
async def open_services(settings: ProfileSettings) -> AsyncIterator[ProfileServices[SqlAdapters]]:
    """For a command: the services on a private registry, the pool disposed of at the end."""
    services = build_services(settings)
    try:
        yield services
    finally:
        await services.adapters.engine.dispose()


@asynccontextmanager
async def open_outbox_admin(settings: ProfileSettings) -> AsyncIterator[OutboxAdminService]:
    """For the outbox commands: the outbox admin alone, which reads no contact data (no keys needed)."""
    engine = make_engine(settings.database)
    try:
        uow_factory = SqlOutboxAdminUnitOfWorkFactory(engine)
        yield _outbox_admin(uow_factory, _outbox_limits(settings.relay), CollectorRegistry())
    finally:
        await engine.dispose()

"""Builds the outbox admin service from settings (shared by the HTTP app and the CLI)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.outbox.settings import RelaySettings
from services.profile.outbox_admin.service import OutboxAdminLimits, OutboxAdminMetrics, OutboxAdminService
from services.profile.outbox_admin.sql import SqlOutboxAdminUnitOfWorkFactory


def build_outbox_admin_service(
    engine: AsyncEngine, relay: RelaySettings, registry: CollectorRegistry
) -> OutboxAdminService:
    limits = OutboxAdminLimits(max_page_size=relay.admin_max_page_size, redrive_max_rows=relay.redrive_max_rows)
    return OutboxAdminService(SqlOutboxAdminUnitOfWorkFactory(engine), limits, OutboxAdminMetrics(registry))

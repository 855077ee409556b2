"""Builds the outbox admin service from settings (shared by the HTTP app and the CLI)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.outbox.settings import RelaySettings
from services.profile.adapters.outbox_admin import SqlOutboxAdminUnitOfWorkFactory
from services.profile.service_layer.outbox_admin import OutboxAdminLimits, OutboxAdminMetrics, OutboxAdminService


def build_outbox_admin_service(
    engine: AsyncEngine, relay: RelaySettings, registry: CollectorRegistry
) -> OutboxAdminService:
    limits = OutboxAdminLimits(max_page_size=relay.admin_max_page_size, redrive_max_rows=relay.redrive_max_rows)
    return OutboxAdminService(SqlOutboxAdminUnitOfWorkFactory(engine), limits, OutboxAdminMetrics(registry))

"""Builds the admin notifications from settings: the mail channel on the delivery engine (its breaker and
retry scheduler, run with the systems' ones) and the watcher that counts causes into windows."""

from __future__ import annotations

from typing import Any

import msgspec
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from services.sync_connector.admin_notify.mail import ADMIN_CODE, AdminMailChannel
from services.sync_connector.admin_notify.metrics import AdminNotifyMetrics
from services.sync_connector.admin_notify.watch import AdminWatch, BreakerWatch, ProfileSignalSource
from services.sync_connector.breaker import BreakerState, CircuitBreaker
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.engine import DeliveryEngine
from services.sync_connector.http_clients import PROFILE_CLIENT, HttpClients
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.notify.wiring import BreakerHook
from services.sync_connector.outcome import RetryPolicy, equal_jitter
from services.sync_connector.scheduler import RetryScheduler
from services.sync_connector.settings import ConnectorSettings


class AdminNotifyParts(msgspec.Struct, frozen=True):
    scheduler: RetryScheduler[Any]
    breaker: CircuitBreaker
    watch: AdminWatch


def build_admin_notifications(
    settings: ConnectorSettings,
    engine: AsyncEngine,
    clients: HttpClients,
    *,
    metrics: AdminNotifyMetrics,
    connector_metrics: ConnectorMetrics,
    breakers: BreakerWatch,
    tracer: trace.Tracer,
    on_breaker_transition: BreakerHook,
    clock: Clock = SYSTEM_CLOCK,
) -> AdminNotifyParts:
    admin = settings.admin_notify
    breaker = CircuitBreaker(
        ADMIN_CODE,
        failure_threshold=admin.breaker_failure_threshold,
        cooldown_s=admin.breaker_cooldown_s,
        max_cooldown_s=admin.backoff_max_s,
        call_timeout_s=settings.notify.timeout_s,
        clock=clock.monotonic,
        on_transition=on_breaker_transition,
    )
    connector_metrics.breaker_state.labels(ADMIN_CODE).set(BreakerState.CLOSED)
    delivery = DeliveryEngine(
        AdminMailChannel(engine, admin, settings.notify, metrics, clock=clock),
        breaker,
        RetryPolicy(None, admin.backoff_base_s, admin.backoff_max_s, equal_jitter),
        deadline_s=admin.delivery_deadline_s,
        lease_s=admin.claim_lease_s,
        recheck_s=admin.poll_interval_s,
        clock=clock,
    )
    scheduler: RetryScheduler[Any] = RetryScheduler(
        delivery,
        breaker,
        connector_metrics,
        tracer,
        poll_interval_s=min(admin.poll_interval_s, admin.gather_s, 1.0),
        concurrency=2,
        grace_s=settings.shutdown_grace_s,
        span_name="admin notification",
    )
    profile = ProfileSignalSource(settings.profile, clients.get(PROFILE_CLIENT)) if settings.profile.url else None
    watch = AdminWatch(
        engine, admin, metrics, breakers=breakers, profile=profile, on_opened=scheduler.wake, clock=clock
    )
    return AdminNotifyParts(scheduler, breaker, watch)

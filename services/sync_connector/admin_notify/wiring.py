"""Builds the admin notifications from settings: the mail channel on the delivery engine (its breaker and
retry scheduler, run with the systems' ones) and the watcher that counts causes into windows."""

from __future__ import annotations

from typing import Any

import msgspec

from services.sync_connector.admin_notify.mail import ADMIN_CODE, AdminMailChannel
from services.sync_connector.admin_notify.metrics import AdminNotifyMetrics
from services.sync_connector.admin_notify.watch import AdminWatch, BreakerWatch, ProfileSignalSource
from services.sync_connector.breaker import CircuitBreaker
from services.sync_connector.engine import DeliveryEngine
from services.sync_connector.http_clients import PROFILE_CLIENT
from services.sync_connector.outcome import RetryPolicy, equal_jitter
from services.sync_connector.scheduler import RetryScheduler
from services.sync_connector.wiring import Wiring


class AdminNotifyParts(msgspec.Struct, frozen=True):
    scheduler: RetryScheduler[Any]
    breaker: CircuitBreaker
    watch: AdminWatch


def build_admin_notifications(
    wiring: Wiring, *, metrics: AdminNotifyMetrics, breakers: BreakerWatch
) -> AdminNotifyParts:
    settings, clock = wiring.settings, wiring.clock
    admin = settings.admin_notify
    breaker = wiring.breaker(
        ADMIN_CODE,
        failure_threshold=admin.breaker_failure_threshold,
        cooldown_s=admin.breaker_cooldown_s,
        max_cooldown_s=admin.backoff_max_s,
        call_timeout_s=settings.notify.timeout_s,
    )
    delivery = DeliveryEngine(
        AdminMailChannel(wiring.engine, admin, settings.notify, metrics, clock=clock),
        breaker,
        RetryPolicy(None, admin.backoff_base_s, admin.backoff_max_s, equal_jitter),
        deadline_s=admin.delivery_deadline_s,
        lease_s=admin.claim_lease_s,
        recheck_s=admin.poll_interval_s,
        clock=clock,
    )
    scheduler: RetryScheduler[Any] = wiring.scheduler(
        delivery,
        breaker,
        poll_interval_s=min(admin.poll_interval_s, admin.gather_s, 1.0),
        concurrency=2,
        span_name="admin notification",
    )
    profile = (
        ProfileSignalSource(settings.profile, wiring.clients.get(PROFILE_CLIENT)) if settings.profile.url else None
    )
    watch = AdminWatch(
        wiring.engine, admin, metrics, breakers=breakers, profile=profile, on_opened=scheduler.wake, clock=clock
    )
    return AdminNotifyParts(scheduler, breaker, watch)

"""Builds the notification sender from settings: a consumer group, and per channel a breaker and a scheduler.

``ConnectorRuntime`` adds the parts to its own consumers, schedulers and
breakers, so they start, stop, report readiness and metrics like the external
systems' parts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from services.sync_connector.breaker import BreakerState, CircuitBreaker
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.consumer import SystemConsumer
from services.sync_connector.consumer_group import consumer_group
from services.sync_connector.engine import DeliveryEngine
from services.sync_connector.http_clients import PROFILE_CLIENT, SMS_CLIENT, HttpClients
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.notify.channels import EmailTransport, SmsTransport, Transport
from services.sync_connector.notify.contacts import ProfileContacts
from services.sync_connector.notify.delivery import NotificationChannel, fixed_backoff
from services.sync_connector.notify.intake import NotificationIntake
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.settings import Channel
from services.sync_connector.scheduler import RetryScheduler
from services.sync_connector.settings import ConnectorSettings
from services.sync_connector.unprocessable import UnprocessableMessages

NOTIFY_CODE = "NOTIFY"  # the consumer's system_code label and group suffix (<prefix>.notify)
BreakerHook = Callable[[str, BreakerState, BreakerState, str], None]


class NotificationParts(msgspec.Struct, frozen=True):
    consumer: SystemConsumer
    schedulers: dict[str, RetryScheduler[Any]]  # by channel code (EMAIL, SMS)
    breakers: dict[str, CircuitBreaker]


def build_notifications(
    settings: ConnectorSettings,
    engine: AsyncEngine,
    clients: HttpClients,
    *,
    metrics: NotificationMetrics,
    connector_metrics: ConnectorMetrics,
    unprocessable: UnprocessableMessages,
    tracer: trace.Tracer,
    on_breaker_transition: BreakerHook,
    clock: Clock = SYSTEM_CLOCK,
) -> NotificationParts:
    notify = settings.notify
    contacts = ProfileContacts(settings.profile, clients.get(PROFILE_CLIENT))
    transports: dict[Channel, Transport] = {
        Channel.EMAIL: EmailTransport(notify),
        Channel.SMS: SmsTransport(notify, clients.get(SMS_CLIENT)),
    }
    policy = fixed_backoff(notify.max_attempts, notify.backoff_s)
    schedulers: dict[str, RetryScheduler[Any]] = {}
    breakers: dict[str, CircuitBreaker] = {}
    for channel in notify.channels:
        breaker = breakers[channel.code] = CircuitBreaker(
            channel.code,
            failure_threshold=notify.breaker_failure_threshold,
            cooldown_s=notify.breaker_cooldown_s,
            call_timeout_s=2 * notify.timeout_s,  # the contact lookup and the send
            clock=clock.monotonic,
            on_transition=on_breaker_transition,
        )
        connector_metrics.breaker_state.labels(channel.code).set(BreakerState.CLOSED)
        adapter = NotificationChannel(
            engine,
            transports[channel],
            contacts,
            metrics=metrics,
            tracer=tracer,
            default_language=notify.default_language,
            zone=notify.zone,
            clock=clock,
        )
        delivery = DeliveryEngine(
            adapter,
            breaker,
            policy,
            deadline_s=notify.delivery_deadline_s,
            lease_s=notify.claim_lease_s,
            recheck_s=notify.poll_interval_s,
            clock=clock,
        )
        schedulers[channel.code] = RetryScheduler(
            delivery,
            breaker,
            connector_metrics,
            tracer,
            poll_interval_s=notify.poll_interval_s,
            concurrency=notify.concurrency,
            grace_s=settings.shutdown_grace_s,
            span_name=f"notify {channel.value}",
        )
    intake = NotificationIntake(
        engine,
        notify.channels,
        metrics,
        max_attempts=notify.max_attempts,
        max_event_age_s=notify.max_event_age_s,
        on_recorded=lambda channel: schedulers[channel.code].wake(),
        deadline_s=notify.delivery_deadline_s,
        clock=clock,
    )
    consumer = consumer_group(
        settings, NOTIFY_CODE, intake, tracer=tracer, metrics=connector_metrics, unprocessable=unprocessable
    )
    return NotificationParts(consumer, schedulers, breakers)

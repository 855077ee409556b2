"""Builds the notification sender from settings: a consumer group, and per channel a breaker and a scheduler.

``ConnectorRuntime`` adds the parts to its own consumers, schedulers and
breakers, so they start, stop, report readiness and metrics like the external
systems' parts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.sync_connector.breaker import CircuitBreaker
from services.sync_connector.consumer import SystemConsumer
from services.sync_connector.engine import DeliveryEngine
from services.sync_connector.http_clients import PROFILE_CLIENT, SMS_CLIENT
from services.sync_connector.notify.channels import EmailTransport, SmsTransport, Transport
from services.sync_connector.notify.contacts import ProfileContacts
from services.sync_connector.notify.delivery import NotificationChannel, fixed_backoff
from services.sync_connector.notify.intake import NotificationIntake
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.settings import Channel
from services.sync_connector.scheduler import RetryScheduler
from services.sync_connector.unprocessable import UnprocessableMessages
from services.sync_connector.wiring import Wiring

NOTIFY_CODE = "NOTIFY"  # the consumer's system_code label and group suffix (<prefix>.notify)


class NotificationParts(msgspec.Struct, frozen=True):
    consumer: SystemConsumer
    schedulers: dict[str, RetryScheduler[Any]]  # by channel code (EMAIL, SMS)
    breakers: dict[str, CircuitBreaker]


def build_notifications(
    wiring: Wiring, *, metrics: NotificationMetrics, unprocessable: UnprocessableMessages
) -> NotificationParts:
    notify = wiring.settings.notify
    contacts = ProfileContacts(wiring.settings.profile, wiring.clients.get(PROFILE_CLIENT))
    transports: dict[Channel, Transport] = {
        Channel.EMAIL: EmailTransport(notify),
        Channel.SMS: SmsTransport(notify, wiring.clients.get(SMS_CLIENT)),
    }
    policy = fixed_backoff(notify.max_attempts, notify.backoff_s)
    schedulers: dict[str, RetryScheduler[Any]] = {}
    breakers: dict[str, CircuitBreaker] = {}
    for channel in notify.channels:
        breaker = breakers[channel.code] = wiring.breaker(
            channel.code,
            failure_threshold=notify.breaker_failure_threshold,
            cooldown_s=notify.breaker_cooldown_s,
            call_timeout_s=2 * notify.timeout_s,  # the contact lookup and the send
        )
        adapter = NotificationChannel(
            wiring.engine,
            transports[channel],
            contacts,
            metrics=metrics,
            tracer=wiring.tracer,
            default_language=notify.default_language,
            zone=notify.zone,
            clock=wiring.clock,
        )
        delivery = DeliveryEngine(
            adapter,
            breaker,
            policy,
            deadline_s=notify.delivery_deadline_s,
            lease_s=notify.claim_lease_s,
            recheck_s=notify.poll_interval_s,
            clock=wiring.clock,
        )
        schedulers[channel.code] = wiring.scheduler(
            delivery,
            breaker,
            poll_interval_s=notify.poll_interval_s,
            concurrency=notify.concurrency,
            span_name=f"notify {channel.value}",
        )
    intake = NotificationIntake(
        wiring.engine,
        notify.channels,
        metrics,
        max_attempts=notify.max_attempts,
        max_event_age_s=notify.max_event_age_s,
        on_recorded=lambda channel: schedulers[channel.code].wake(),
        deadline_s=notify.delivery_deadline_s,
        clock=wiring.clock,
    )
    consumer = wiring.consumer_group(NOTIFY_CODE, intake, unprocessable)
    return NotificationParts(consumer, schedulers, breakers)

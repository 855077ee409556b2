"""The notification channels (e-mail, SMS) as channels of the delivery engine.

``NotificationChannel`` is the adapter of one channel to the delivery engine (``engine.py``), which
claims due records under the channel's breaker, retries by time until the record's deadline and
settles: its ledger is ``sync.notification_records`` (no lanes: every due record may go), its call
looks the contact up at the profile service, renders the message and sends it through the channel's
transport, and its reports are the ``notification_*`` metrics and log lines. Nothing runs inside a
transaction that is open across a network call (invariant 6): the claim commits, then the lookup and
the send, then the result commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass, field
from datetime import tzinfo

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import decode_event
from libs.kit.logging import get_logger
from services.sync_connector.attempts import Attempted, CallResult
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.engine import Expired
from services.sync_connector.ledger_sql import TableLedger
from services.sync_connector.notify.channels import SendResult, Transport
from services.sync_connector.notify.contacts import Contact, ContactLookupError, ProfileContacts
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.records import (
    NotificationRecord,
    NotificationSettlement,
    NotificationStatus,
    NotificationUnitOfWork,
)
from services.sync_connector.notify.settings import Channel, Language
from services.sync_connector.notify.templates import NoticeFacts, choose_language, render
from services.sync_connector.outcome import Classification, Outcome, RetryPolicy, SyncStatus

log = get_logger(__name__)

_STATUS_OF = {
    SyncStatus.SUCCESS: NotificationStatus.SENT,
    SyncStatus.RETRYING: NotificationStatus.RETRYING,
    SyncStatus.FAILED: NotificationStatus.FAILED,
}


def fixed_backoff(max_attempts: int | None, backoff_s: float) -> RetryPolicy:
    """Seed 000 7.3 (``attempts: 5, backoff: 'fixed', delay: 2000``) as a RetryPolicy: no growth, no jitter.

    ``max_attempts`` counts every attempt (None: no count cap, sent until the record's deadline).
    """
    max_retries = None if max_attempts is None else max_attempts - 1
    return RetryPolicy(max_retries=max_retries, base_s=backoff_s, max_s=backoff_s, jitter=lambda delay: delay)


def status_of(result: CallResult) -> NotificationStatus:
    """The record's status after ``result``, in the notifications' words."""
    final = result.attempted.final_status
    return NotificationStatus(final) if final is not None else _STATUS_OF[result.status]


@dataclass(eq=False, repr=False)
class NotificationChannel:
    """E-mail or SMS as a channel of the delivery engine."""

    engine: AsyncEngine
    transport: Transport
    contacts: ProfileContacts
    _: KW_ONLY
    metrics: NotificationMetrics
    tracer: trace.Tracer
    default_language: Language
    zone: tzinfo
    clock: Clock = SYSTEM_CLOCK
    channel: Channel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = self.transport.channel

    @property
    def code(self) -> str:
        return self.channel.code

    @asynccontextmanager
    async def ledger(self) -> AsyncIterator[TableLedger[NotificationRecord]]:
        async with NotificationUnitOfWork(self.engine, self.clock) as uow:
            yield TableLedger(uow, uow.notifications, status_of, channel=self.channel.value)

    async def call(self, record: NotificationRecord) -> Attempted:
        try:
            contact = await self.contacts.lookup(record.customer_id)
        except ContactLookupError as exc:  # the channel was not tried: its breaker learns nothing
            self.metrics.contact_lookups.labels("error").inc()
            outcome = Outcome.RETRYABLE if exc.retryable else Outcome.REJECTED
            return Attempted(Classification(outcome, str(exc)), reached=False, label="contact_error")
        self.metrics.contact_lookups.labels("not_found" if contact is None else "found").inc()
        address = None if contact is None else self.transport.address_of(contact)
        if contact is None or address is None:
            why = "no such customer" if contact is None else f"the customer has no {self.channel.value} contact"
            return Attempted(
                Classification(Outcome.REJECTED, why),
                reached=False,
                final_status=NotificationStatus.SKIPPED_NO_CONTACT.value,
                label="no_contact",
            )
        language = choose_language(contact.preferred_language, self.default_language)
        sent = await self._send(record, contact, address, language)
        applied = sent.classification.outcome is Outcome.APPLIED
        return Attempted(
            sent.classification,
            reached=sent.reached,
            label="sent" if applied else sent.classification.outcome.value,
            extra={"language": language.value, "message_id": sent.message_id},
        )

    async def _send(self, record: NotificationRecord, contact: Contact, address: str, language: Language) -> SendResult:
        event = decode_event(record.event.encode())
        facts = NoticeFacts(
            customer_name=contact.customer_name or event.new_name,
            old_name=event.old_name,
            new_name=event.new_name,
            application_id=event.application_id,
            changed_at=event.changed_at,
        )
        notice = render(self.channel, language, facts, self.zone)
        with self.tracer.start_as_current_span(
            f"send {self.channel.value}",
            kind=SpanKind.CLIENT,
            attributes={
                "notification.channel": self.channel.value,
                "notification.language": notice.language.value,
                "messaging.message.id": record.event_id,
                "sync.record_id": record.id,
            },
        ) as span:
            result = await self.transport.send(event_id=record.event_id, to=address, notice=notice)
            span.set_attribute("notification.outcome", result.classification.outcome.value)
        return result

    def status_of(self, result: CallResult) -> str:
        return status_of(result).value

    def deferred(self, record: NotificationRecord, wait_s: float) -> None:  # noqa: ARG002 - the protocol's
        self.metrics.deferred.labels(self.channel.value, "circuit_open").inc()

    def attempted(self, result: CallResult) -> None:
        label = result.attempted.label or result.classification.outcome.value
        self.metrics.attempts.labels(self.channel.value, label).inc()
        self.metrics.attempt_seconds.labels(self.channel.value).observe(result.duration_s)

    def settled(self, settlement: NotificationSettlement) -> None:
        record, result = settlement.record, settlement.result
        status = status_of(result)
        if result.counted or status.value != record.status:  # a failed probe changes nothing of its record
            self.metrics.status.labels(self.channel.value, status.value).inc()
        label = result.attempted.label or result.classification.outcome.value
        fields = {"outcome": label, "attempt": record.attempts + (1 if result.counted else 0)}
        logger = _bind(record)
        if status is NotificationStatus.SENT:
            logger.info("notification_sent", language=result.attempted.extra.get("language"), **fields)
        elif status is NotificationStatus.SKIPPED_NO_CONTACT:
            logger.info("notification_skipped_no_contact", reason=result.error, **fields)
        elif status is NotificationStatus.RETRYING:
            event = "notification_retry_scheduled" if result.counted else "notification_probe_failed"
            logger.warning(event, error=result.error, retry_in_s=round(result.delay_s, 3), **fields)
        else:
            logger.error("notification_failed", reason=result.dead_letter_reason, error=result.error, **fields)

    def lost(self, settlement: NotificationSettlement) -> None:
        self.metrics.claims_lost.labels(self.channel.value).inc()
        label = settlement.result.attempted.label or settlement.result.classification.outcome.value
        _bind(settlement.record).warning("notification_claim_lost", outcome=label)

    def not_recorded(self, count: int, error: Exception, wait_s: float) -> None:
        self.metrics.settle_errors.labels(self.channel.value).inc()
        log.warning(
            "notification_result_not_recorded",
            channel=self.channel.value,
            records=count,
            error=repr(error),
            retry_in_s=round(wait_s, 3),
        )

    def expired(self, expired: Expired, detail: str) -> None:
        self.metrics.status.labels(self.channel.value, NotificationStatus.FAILED.value).inc()
        log.error(
            "notification_failed",
            reason="deadline",
            **expired.log_ids("notification_id"),
            channel=self.channel.value,
            error=detail,
        )


def _bind(record: NotificationRecord) -> structlog.stdlib.BoundLogger:
    # Ids only: names and contact data never reach the logs.
    return log.bind(
        notification_id=record.id, event_id=record.event_id, customer_id=record.customer_id, channel=record.channel
    )

"""Send one channel's notifications: claim due records, look up the contact, render, send, settle.

The channel's ``RetryScheduler`` (the external systems' loop, reused) drives
this: ``claim_due`` takes due records under a fencing token and a lease (and
a breaker permit), ``attempt`` makes one send and records it. Nothing here
runs inside a transaction that is open across a network call (invariant 6):
claim commits, then the contact lookup and the send, then the result commits.
"""

from __future__ import annotations

import asyncio
import time
from datetime import tzinfo

import msgspec
import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import decode_event
from libs.kit.logging import get_logger
from services.sync_connector.breaker import CircuitBreaker, Permit
from services.sync_connector.notify.channels import SendResult, Transport
from services.sync_connector.notify.contacts import Contact, ContactLookupError, ProfileContacts
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.records import (
    NotificationRecord,
    NotificationStatus,
    NotificationUnitOfWork,
    Settlement,
)
from services.sync_connector.notify.settings import Language
from services.sync_connector.notify.templates import NoticeFacts, choose_language, render
from services.sync_connector.outcome import Classification, Outcome, RetryPolicy, SyncStatus, status_after
from services.sync_connector.settling import DueBatch, settle_until_recorded

log = get_logger(__name__)

_STATUS_OF = {
    SyncStatus.SUCCESS: NotificationStatus.SENT,
    SyncStatus.RETRYING: NotificationStatus.RETRYING,
    SyncStatus.FAILED: NotificationStatus.FAILED,
}


class NotificationClaim(msgspec.Struct, frozen=True):
    """The right to make one send for a record (``scheduler.ScheduledClaim``)."""

    record: NotificationRecord
    token: str
    permit: Permit

    @property
    def record_id(self) -> int:
        return self.record.id

    @property
    def event_id(self) -> str:
        return self.record.event_id

    @property
    def trace_headers(self) -> dict[str, str]:
        return self.record.event_headers


def fixed_backoff(max_attempts: int, backoff_s: float) -> RetryPolicy:
    """Seed 000 7.3 (``attempts: 5, backoff: 'fixed', delay: 2000``) as a RetryPolicy: no growth, no jitter."""
    return RetryPolicy(max_retries=max_attempts - 1, base_s=backoff_s, max_s=backoff_s, jitter=lambda delay: delay)


class NotificationDelivery:
    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        contacts: ProfileContacts,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        *,
        metrics: NotificationMetrics,
        tracer: trace.Tracer,
        lease_s: float,
        recheck_s: float,
        default_language: Language,
        zone: tzinfo,
    ) -> None:
        self._engine = engine
        self._transport = transport
        self._contacts = contacts
        self._breaker = breaker
        self._policy = policy
        self._metrics = metrics
        self._tracer = tracer
        self._lease_s = lease_s
        self._recheck_s = recheck_s
        self._default_language = default_language
        self._zone = zone
        self.channel = transport.channel
        self.system_code = transport.channel.code

    async def claim_due(self, limit: int) -> DueBatch[NotificationClaim]:
        claims: list[NotificationClaim] = []
        held: list[Permit] = []
        try:
            async with NotificationUnitOfWork(self._engine) as uow:
                due = await uow.notifications.due(self.channel, limit)
                for record in due:
                    permit = self._breaker.acquire()
                    if permit is None:  # the channel is known to be down: wait for the probe, spend no attempt
                        wait_s = max(self._breaker.seconds_until_probe(), self._recheck_s)
                        await uow.notifications.defer(record.id, wait_s)
                        self._metrics.deferred.labels(self.channel, "circuit_open").inc()
                        continue
                    held.append(permit)
                    token = await uow.notifications.claim(record.id, self._lease_s)
                    claims.append(NotificationClaim(record, token, permit))
                await uow.commit()
        except BaseException:  # no send will be made: a half-open breaker must not wait for its trial
            for permit in held:
                self._breaker.release(permit)
            raise
        return DueBatch(claims, len(due), 0)

    async def expire_overdue(self, limit: int) -> int:  # noqa: ARG002 - notifications have no deadline yet
        return 0

    async def attempt(self, claim: NotificationClaim, stop: asyncio.Event) -> NotificationStatus | None:
        """Send the claimed record once and record the result; None when the claim was lost meanwhile."""
        record, logger = claim.record, _bind(claim.record)
        started = time.monotonic()
        try:
            settlement = await self._attempt(record, claim.permit)
        except BaseException:  # cancelled: no result, and a half-open breaker must not wait for it forever
            self._breaker.release(claim.permit)
            raise
        settlement = msgspec.structs.replace(settlement, duration_s=time.monotonic() - started)
        self._metrics.attempt_seconds.labels(self.channel).observe(settlement.duration_s)

        def not_recorded(exc: Exception, wait_s: float) -> None:
            self._metrics.settle_errors.labels(self.channel).inc()
            logger.warning("notification_result_not_recorded", error=repr(exc), retry_in_s=round(wait_s, 3))

        async def write() -> bool:
            async with NotificationUnitOfWork(self._engine) as uow:
                if not await uow.notifications.settle(record.id, claim.token, settlement):
                    return False
                await uow.commit()
            return True

        if not await settle_until_recorded(write, stop, not_recorded):
            self._metrics.claims_lost.labels(self.channel).inc()
            logger.warning("notification_claim_lost", outcome=settlement.outcome)
            return None
        self._metrics.status.labels(self.channel, settlement.status).inc()
        _log_settled(logger, settlement, record.attempts + 1)
        return settlement.status

    async def _attempt(self, record: NotificationRecord, permit: Permit) -> Settlement:
        try:
            contact = await self._contacts.lookup(record.customer_id)
        except ContactLookupError as exc:
            self._breaker.release(permit)  # the channel was not tried: its breaker learns nothing
            self._metrics.contact_lookups.labels("error").inc()
            self._metrics.attempts.labels(self.channel, "contact_error").inc()
            outcome = Outcome.RETRYABLE if exc.retryable else Outcome.REJECTED
            return self._after(record, Classification(outcome, str(exc)), "contact_error")
        self._metrics.contact_lookups.labels("not_found" if contact is None else "found").inc()
        address = None if contact is None else self._transport.address_of(contact)
        if contact is None or address is None:
            self._breaker.release(permit)
            self._metrics.attempts.labels(self.channel, "no_contact").inc()
            why = "no such customer" if contact is None else f"the customer has no {self.channel.value} contact"
            return Settlement(NotificationStatus.SKIPPED_NO_CONTACT, "no_contact", why, 0.0, 0.0)
        language = choose_language(contact.preferred_language, self._default_language)
        result = await self._send(record, contact, address, language)
        if not result.reached:
            self._breaker.release(permit)
        elif result.classification.outcome is Outcome.RETRYABLE:
            self._breaker.record_failure(permit)
        else:
            self._breaker.record_success(permit)
        label = "sent" if result.classification.outcome is Outcome.APPLIED else result.classification.outcome.value
        self._metrics.attempts.labels(self.channel, label).inc()
        return msgspec.structs.replace(
            self._after(record, result.classification, label), language=language.value, message_id=result.message_id
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
        notice = render(self.channel, language, facts, self._zone)
        with self._tracer.start_as_current_span(
            f"send {self.channel.value}",
            kind=SpanKind.CLIENT,
            attributes={
                "notification.channel": self.channel.value,
                "notification.language": notice.language.value,
                "messaging.message.id": record.event_id,
                "sync.record_id": record.id,
            },
        ) as span:
            result = await self._transport.send(event_id=record.event_id, to=address, notice=notice)
            span.set_attribute("notification.outcome", result.classification.outcome.value)
        return result

    def _after(self, record: NotificationRecord, classification: Classification, outcome: str) -> Settlement:
        """The record's status after this attempt (the seed's fixed backoff; none before the breaker's probe)."""
        status = _STATUS_OF[status_after(classification.outcome, record.attempts, record.max_attempts - 1)]
        delay_s = 0.0
        if status is NotificationStatus.RETRYING:
            delay_s = max(self._policy.delay_before_retry(record.attempts + 1), self._breaker.seconds_until_probe())
        error = None if status is NotificationStatus.SENT else classification.detail
        return Settlement(status, outcome, error, delay_s, 0.0)


def _bind(record: NotificationRecord) -> structlog.stdlib.BoundLogger:
    # Ids only: names and contact data never reach the logs.
    return log.bind(
        notification_id=record.id, event_id=record.event_id, customer_id=record.customer_id, channel=record.channel
    )


def _log_settled(logger: structlog.stdlib.BoundLogger, settlement: Settlement, attempt: int) -> None:
    fields = {"outcome": settlement.outcome, "attempt": attempt}
    if settlement.status is NotificationStatus.SENT:
        logger.info("notification_sent", language=settlement.language, **fields)
    elif settlement.status is NotificationStatus.SKIPPED_NO_CONTACT:
        logger.info("notification_skipped_no_contact", reason=settlement.error, **fields)
    elif settlement.status is NotificationStatus.RETRYING:
        logger.warning("notification_retry_scheduled", error=settlement.error, retry_in_s=settlement.delay_s, **fields)
    else:
        logger.error("notification_failed", error=settlement.error, **fields)

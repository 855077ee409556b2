"""Deliver one event to one external system: record, call, classify, record, retry.

Every database write commits before the next network call (invariant 6), so a
crash at any point leaves a record the redelivered message resumes from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import CustomerNameChanged
from libs.kit.logging import get_logger
from libs.kit.telemetry import context_from_headers
from services.sync_connector.messages import KafkaMessage, UndecodableMessageError, decode_message
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import (
    TERMINAL_STATUSES,
    Classification,
    Outcome,
    RetryPolicy,
    SyncStatus,
    classify_response,
    classify_transport_error,
    status_after,
)
from services.sync_connector.records import RecordState, SyncUnitOfWork
from services.sync_connector.sinks import Sink, SinkUnavailableError, encode_payload

log = get_logger(__name__)


class DeliveryInterruptedError(Exception):
    """Stop was requested while waiting to retry; the message stays uncommitted and is redelivered."""


class SyncDelivery:
    def __init__(self, engine: AsyncEngine, sink: Sink, policy: RetryPolicy, metrics: ConnectorMetrics) -> None:
        self._engine = engine
        self._sink = sink
        self._policy = policy
        self._metrics = metrics
        self._code = sink.system.code

    async def deliver(self, event_id: str, event: CustomerNameChanged, stop: asyncio.Event) -> SyncStatus:
        """Settle (event, system): returns the record's final status."""
        body = encode_payload(event_id, event)
        logger = log.bind(
            event_id=event_id,
            customer_id=event.customer_id,
            system_code=self._code,
            profile_version=event.profile_version,
        )
        async with SyncUnitOfWork(self._engine) as uow:
            record = await uow.records.open(
                event_id=event_id,
                customer_id=event.customer_id,
                application_id=event.application_id,
                profile_version=event.profile_version,
                system=self._sink.system,
                sync_data=body,
                max_retry_count=self._policy.max_retries,
            )
            if record.status in TERMINAL_STATUSES:
                self._metrics.skipped.labels(self._code).inc()
                logger.info("sync_redelivery_skipped", sync_status=record.status.value)
                return record.status
            applied = await uow.records.applied_version(self._code, event.customer_id)
            if applied is not None and applied >= event.profile_version:
                await uow.records.finish(
                    record.id, SyncStatus.SUPERSEDED, None, f"{self._code} already applied version {applied}"
                )
                await uow.commit()
                self._count_status(SyncStatus.SUPERSEDED)
                logger.info("sync_superseded", applied_version=applied)
                return SyncStatus.SUPERSEDED
            await uow.commit()
        return await self._attempt_until_settled(record, event_id, event, body=body, stop=stop, logger=logger)

    async def _attempt_until_settled(
        self,
        record: RecordState,
        event_id: str,
        event: CustomerNameChanged,
        *,
        body: bytes,
        stop: asyncio.Event,
        logger: structlog.stdlib.BoundLogger,
    ) -> SyncStatus:
        retries_done = record.retry_count
        if record.status is SyncStatus.RETRYING and record.next_attempt_at is not None:
            # Resuming after a restart or rebalance: keep the schedule the previous owner set.
            remaining = (record.next_attempt_at - datetime.now(UTC)).total_seconds()
            await _wait_or_interrupt(stop, min(remaining, self._policy.max_delay_s))
        while True:
            started = time.monotonic()
            classification, http_status = await self._call(event_id, body, event.profile_version)
            duration_s = time.monotonic() - started
            status = status_after(classification.outcome, retries_done, self._policy.max_retries)
            delay_s = 0.0
            async with SyncUnitOfWork(self._engine) as uow:
                await uow.records.add_attempt(
                    record.id,
                    outcome=classification.outcome.value,
                    http_status=http_status,
                    error=None if status is SyncStatus.SUCCESS else classification.detail,
                    duration_ms=duration_s * 1000,
                )
                if status is SyncStatus.RETRYING:
                    retries_done += 1
                    delay_s = self._policy.delay_before_retry(retries_done)
                    next_at = datetime.now(UTC) + timedelta(seconds=delay_s)
                    await uow.records.schedule_retry(
                        record.id,
                        retry_count=retries_done,
                        next_attempt_at=next_at,
                        http_status=http_status,
                        error=classification.detail,
                    )
                else:
                    error = None if status is SyncStatus.SUCCESS else classification.detail
                    await uow.records.finish(record.id, status, http_status, error)
                    if status is SyncStatus.SUCCESS:
                        await uow.records.record_applied(self._code, event.customer_id, event.profile_version, event_id)
                await uow.commit()
            self._metrics.attempts.labels(self._code, classification.outcome.value).inc()
            self._metrics.attempt_seconds.labels(self._code).observe(duration_s)
            self._count_status(status)
            _log_attempt(logger, status, classification, http_status=http_status, retries=retries_done, delay_s=delay_s)
            if status is not SyncStatus.RETRYING:
                return status
            await _wait_or_interrupt(stop, delay_s)

    async def _call(self, event_id: str, body: bytes, version: int) -> tuple[Classification, int | None]:
        try:
            response = await self._sink.send(event_id, body)
        except SinkUnavailableError as exc:
            return classify_transport_error(exc.kind, str(exc)), None
        return classify_response(response.status, response.body, version), response.status

    def _count_status(self, status: SyncStatus) -> None:
        self._metrics.status.labels(self._code, status.value).inc()


def _log_attempt(
    logger: structlog.stdlib.BoundLogger,
    status: SyncStatus,
    classification: Classification,
    *,
    http_status: int | None,
    retries: int,
    delay_s: float,
) -> None:
    fields = {"outcome": classification.outcome.value, "http_status": http_status, "retry_count": retries}
    if status is SyncStatus.SUCCESS:
        logger.info("sync_succeeded", **fields)
    elif status is SyncStatus.SUPERSEDED:
        logger.info("sync_superseded", detail=classification.detail, **fields)
    elif status is SyncStatus.RETRYING:
        logger.warning("sync_retry_scheduled", error=classification.detail, retry_in_s=round(delay_s, 3), **fields)
    else:
        permanent = classification.outcome is not Outcome.RETRYABLE
        logger.error("sync_failed", error=classification.detail, permanent=permanent, **fields)


async def _wait_or_interrupt(stop: asyncio.Event, delay_s: float) -> None:
    if delay_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay_s)
    if stop.is_set():
        raise DeliveryInterruptedError


class SystemMessageHandler:
    """Handles one Kafka message for one external system, inside a consumer span."""

    def __init__(
        self,
        delivery: SyncDelivery,
        system_code: str,
        group_id: str,
        tracer: trace.Tracer,
        metrics: ConnectorMetrics,
    ) -> None:
        self._delivery = delivery
        self._code = system_code
        self._group_id = group_id
        self._tracer = tracer
        self._metrics = metrics

    async def __call__(self, message: KafkaMessage, stop: asyncio.Event) -> None:
        where = {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "system_code": self._code,
        }
        try:
            decoded = decode_message(message)
        except UndecodableMessageError as exc:
            self._skip_undecodable(exc, where)
            return
        if decoded.event is None:
            self._metrics.ignored.labels(self._code, decoded.event_type).inc()
            log.debug("message_ignored", event_type=decoded.event_type, **where)
            return
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": message.topic,
            "messaging.kafka.consumer.group": self._group_id,
            "messaging.destination.partition.id": str(message.partition),
            "messaging.kafka.offset": message.offset,
            "messaging.kafka.message.key": (message.key or b"").decode(errors="replace"),
            "messaging.message.id": decoded.event_id,
        }
        with self._tracer.start_as_current_span(
            f"process {message.topic}",
            context=context_from_headers(decoded.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as span:
            status = await self._delivery.deliver(decoded.event_id, decoded.event, stop)
            span.set_attribute("sync.status", status.value)

    def _skip_undecodable(self, error: UndecodableMessageError, where: dict[str, object]) -> None:
        # Skipped, not retried: no redelivery can make these bytes decodable.
        self._metrics.undecodable.labels(self._code).inc()
        log.error("message_undecodable", error=str(error), **where)

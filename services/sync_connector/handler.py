"""The partition worker's handler: a batch of one partition's messages for one external system."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from libs.kit.logging import get_logger
from libs.kit.telemetry import context_from_headers
from services.sync_connector.batches import AcceptedEvent
from services.sync_connector.messages import DecodedMessage, KafkaMessage, UndecodableMessageError, decode_message
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.unprocessable import Rejected, UndecodableMessagesError

log = get_logger(__name__)


class EventAcceptor(Protocol):
    """Takes a batch of decoded events of one partition, in order (``SyncDelivery`` for a system, the
    notification intake); says per event what it did."""

    async def accept_batch(self, events: Sequence[AcceptedEvent], stop: asyncio.Event) -> list[str]: ...


@dataclass(eq=False, repr=False)
class SystemMessageHandler:
    """Handles a batch of one partition's messages for one external system, a consumer span per message."""

    delivery: EventAcceptor
    system_code: str
    group_id: str
    tracer: trace.Tracer
    metrics: ConnectorMetrics

    async def __call__(self, messages: Sequence[KafkaMessage], stop: asyncio.Event) -> None:
        """Raises ``UndecodableMessagesError`` before anything is processed when some messages can never be
        decoded: the worker dead-letters them and calls again with the rest."""
        decoded: list[tuple[KafkaMessage, DecodedMessage]] = []
        rejected: list[Rejected] = []
        for message in messages:
            try:
                decoded.append((message, decode_message(message)))
            except UndecodableMessageError as exc:
                rejected.append(Rejected(message, str(exc)))
        if rejected:
            for item in rejected:
                self.metrics.undecodable.labels(self.system_code).inc()
                log.warning("message_undecodable", error=item.error, **self._where(item.message))
            raise UndecodableMessagesError(rejected)
        accepted = [event for message, d in decoded if (event := self._open(message, d)) is not None]
        if not accepted:
            return
        try:
            results = await self.delivery.accept_batch(accepted, stop)
        except BaseException as exc:
            for event in accepted:
                event.span.record_exception(exc)
                event.span.set_status(StatusCode.ERROR, type(exc).__name__)
                event.span.end()
            raise
        for event, result in zip(accepted, results, strict=True):
            event.span.set_attribute("sync.result", result)
            event.span.end()

    def _where(self, message: KafkaMessage) -> dict[str, object]:
        return {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "system_code": self.system_code,
        }

    def _open(self, message: KafkaMessage, decoded: DecodedMessage) -> AcceptedEvent | None:
        """The decoded event with its processing span started; None for a message to skip."""
        if decoded.event is None:
            self.metrics.ignored.labels(self.system_code, decoded.event_type).inc()
            log.debug("message_ignored", event_type=decoded.event_type, **self._where(message))
            return None
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": message.topic,
            "messaging.kafka.consumer.group": self.group_id,
            "messaging.destination.partition.id": str(message.partition),
            "messaging.kafka.offset": message.offset,
            "messaging.kafka.message.key": (message.key or b"").decode(errors="replace"),
            "messaging.message.id": decoded.event_id,
        }
        span = self.tracer.start_span(
            f"process {message.topic}",
            context=context_from_headers(decoded.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        return AcceptedEvent(decoded.event_id, decoded.event, decoded.headers, span)

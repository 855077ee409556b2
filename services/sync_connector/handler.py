"""The partition worker's handler: one Kafka message for one external system, inside a consumer span."""

from __future__ import annotations

import asyncio
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from contracts.events import CustomerNameChanged
from libs.kit.logging import get_logger
from libs.kit.telemetry import context_from_headers
from services.sync_connector.messages import KafkaMessage, UndecodableMessageError, decode_message
from services.sync_connector.metrics import ConnectorMetrics

log = get_logger(__name__)


class EventAcceptor(Protocol):
    """Takes one decoded event (``SyncDelivery`` for a system, the notification intake); says what it did."""

    async def accept(
        self, event_id: str, event: CustomerNameChanged, headers: dict[str, str], stop: asyncio.Event
    ) -> str: ...


class SystemMessageHandler:
    """Handles one Kafka message for one external system, inside a consumer span."""

    def __init__(
        self,
        delivery: EventAcceptor,
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
            result = await self._delivery.accept(decoded.event_id, decoded.event, decoded.headers, stop)
            span.set_attribute("sync.result", result)

    def _skip_undecodable(self, error: UndecodableMessageError, where: dict[str, object]) -> None:
        # Skipped, not retried: no redelivery can make these bytes decodable.
        self._metrics.undecodable.labels(self._code).inc()
        log.error("message_undecodable", error=str(error), **where)

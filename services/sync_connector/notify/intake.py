"""The notification consumer's handler target: a batch of events in, one record per event and channel.

Runs on the ``<prefix>.notify`` group's partition worker (the connector's
``SystemConsumer`` and ``SystemMessageHandler``, reused). It makes no network
call: it writes the records (the offset is committed once they are written)
and wakes the channels' schedulers, which send. A redelivered event finds its
records already there (unique on event id + channel) and adds nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import encode_event
from libs.kit.logging import get_logger
from services.sync_connector.batches import AcceptedEvent
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.records import NotificationStatus, NotificationUnitOfWork
from services.sync_connector.notify.settings import Channel

log = get_logger(__name__)


class NotificationIntake:
    def __init__(
        self,
        engine: AsyncEngine,
        channels: Sequence[Channel],
        metrics: NotificationMetrics,
        *,
        max_attempts: int | None,
        max_event_age_s: float,
        on_recorded: Callable[[Channel], None],
        deadline_s: float = 24 * 3600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._engine = engine
        self._channels = list(channels)
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._deadline_s = deadline_s
        self._max_age = timedelta(seconds=max_event_age_s)
        self._on_recorded = on_recorded
        self._clock = clock

    async def accept_batch(
        self,
        events: Sequence[AcceptedEvent],
        stop: asyncio.Event,  # noqa: ARG002 - one short transaction: nothing to cut short
    ) -> list[str]:
        """Record the events' notifications in one transaction; per event ``recorded``, ``skipped_stale``
        or ``duplicate``."""
        now = self._clock.now()
        opened: list[tuple[AcceptedEvent, NotificationStatus, list[Channel]]] = []
        async with NotificationUnitOfWork(self._engine, self._clock) as uow:
            for accepted in events:
                event = accepted.event
                stale = now - event.changed_at > self._max_age
                status = NotificationStatus.SKIPPED_STALE if stale else NotificationStatus.PENDING
                created = await uow.notifications.open(
                    event_id=accepted.event_id,
                    customer_id=event.customer_id,
                    application_id=event.application_id,
                    event_json=encode_event(event),
                    event_headers=accepted.headers,
                    channels=self._channels,
                    max_attempts=self._max_attempts,
                    deadline_s=self._deadline_s,
                    status=status,
                )
                opened.append((accepted, status, list(created)))
            await uow.commit()
        return [self._report(accepted, status, created) for accepted, status, created in opened]

    def _report(self, accepted: AcceptedEvent, status: NotificationStatus, created: list[Channel]) -> str:
        event = accepted.event
        logger = log.bind(event_id=accepted.event_id, customer_id=event.customer_id)
        if not created:
            self._metrics.redeliveries_skipped.inc()
            logger.info("notification_redelivery_skipped")
            return "duplicate"
        stale = status is NotificationStatus.SKIPPED_STALE
        for channel in created:
            self._metrics.status.labels(channel, status).inc()
            if not stale:
                self._on_recorded(channel)
        if stale:
            logger.warning("notification_skipped_stale", changed_at=event.changed_at.isoformat(), channels=created)
            return NotificationStatus.SKIPPED_STALE.value
        logger.info("notification_recorded", channels=created)
        return "recorded"

"""The notification consumer's handler target: one event in, one record per channel, committed.

Runs on the ``<prefix>.notify`` group's partition worker (the connector's
``SystemConsumer`` and ``SystemMessageHandler``, reused). It makes no network
call: it writes the records (the offset is committed once they are written)
and wakes the channels' schedulers, which send. A redelivered event finds its
records already there (unique on event id + channel) and adds nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import CustomerNameChanged, encode_event
from libs.kit.logging import get_logger
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.records import NotificationStatus, NotificationUnitOfWork
from services.sync_connector.notify.settings import Channel

log = get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class NotificationIntake:
    def __init__(
        self,
        engine: AsyncEngine,
        channels: Sequence[Channel],
        metrics: NotificationMetrics,
        *,
        max_attempts: int,
        max_event_age_s: float,
        on_recorded: Callable[[Channel], None],
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._channels = list(channels)
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._max_age = timedelta(seconds=max_event_age_s)
        self._on_recorded = on_recorded
        self._clock = clock

    async def accept(
        self,
        event_id: str,
        event: CustomerNameChanged,
        headers: dict[str, str],
        stop: asyncio.Event,  # noqa: ARG002 - one short transaction: nothing to cut short
    ) -> str:
        """Record the event's notifications; returns ``recorded``, ``skipped_stale`` or ``duplicate``."""
        stale = self._clock() - event.changed_at > self._max_age
        status = NotificationStatus.SKIPPED_STALE if stale else NotificationStatus.PENDING
        async with NotificationUnitOfWork(self._engine) as uow:
            created = await uow.notifications.open(
                event_id=event_id,
                customer_id=event.customer_id,
                application_id=event.application_id,
                event_json=encode_event(event),
                event_headers=headers,
                channels=self._channels,
                max_attempts=self._max_attempts,
                status=status,
            )
            await uow.commit()
        logger = log.bind(event_id=event_id, customer_id=event.customer_id)
        if not created:
            self._metrics.redeliveries_skipped.inc()
            logger.info("notification_redelivery_skipped")
            return "duplicate"
        for channel in created:
            self._metrics.status.labels(channel, status).inc()
            if not stale:
                self._on_recorded(channel)
        if stale:
            logger.warning("notification_skipped_stale", changed_at=event.changed_at.isoformat(), channels=created)
            return NotificationStatus.SKIPPED_STALE.value
        logger.info("notification_recorded", channels=created)
        return "recorded"

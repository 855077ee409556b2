"""Notification admin use cases: list, inspect, re-send (one unit of work each, audited).

Shared by the connector's HTTP API and its CLI. A re-send resets a record that
ended ``failed``, ``skipped_no_contact`` (contact data added since) or
``skipped_stale`` to ``retrying`` with a full delivery deadline again (from its
next attempt) and, with a count cap, another ``CONNECTOR_NOTIFY_MAX_ATTEMPTS``
attempts; the channel's scheduler in any connector instance then sends it,
with the same ``Message-ID`` / ``Idempotency-Key``. A ``sent`` record is not
re-sent (409): the customer has the message. Every re-send is written to
``sync.admin_actions`` like the external systems' retries.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db import UnitOfWork
from libs.kit.errors import NotFoundError, ValidationError
from libs.kit.logging import get_logger
from services.sync_connector.admin import (
    Actor,
    InvalidStatus,
    admin_action,
    check_status_and_event_id,
    page_end,
    page_start,
)
from services.sync_connector.admin_store import AdminRepository
from services.sync_connector.notify.admin_store import (
    NotificationAdminRepository,
    NotificationDetail,
    NotificationFilter,
    NotificationView,
)
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.records import NotificationStatus
from services.sync_connector.notify.settings import Channel

log = get_logger(__name__)

RESENDABLE = frozenset(
    {NotificationStatus.FAILED, NotificationStatus.SKIPPED_NO_CONTACT, NotificationStatus.SKIPPED_STALE}
)


class NotificationNotFound(NotFoundError):
    code = "NOTIFICATION_NOT_FOUND"
    title = "Notification record not found"


class NotificationPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[NotificationView]
    next_cursor: str | None


class BulkResendResult(msgspec.Struct, frozen=True, rename="camel"):
    channel: str
    status: str
    count: int
    notification_ids: list[int]
    limit_reached: bool  # more records may match: call again


class NotificationAdminUnitOfWork(UnitOfWork):
    notifications: NotificationAdminRepository
    audit: AdminRepository  # sync.admin_actions, shared with the external systems' retries

    def _bind(self, connection: AsyncConnection) -> None:
        self.notifications = NotificationAdminRepository(connection)
        self.audit = AdminRepository(connection)


def _channel(raw: str) -> Channel:
    try:
        return Channel(raw)
    except ValueError as exc:
        raise ValidationError(f"channel must be one of {sorted(Channel)}") from exc


def validate_filter(where: NotificationFilter) -> NotificationFilter:
    if where.channel is not None:
        _channel(where.channel)
    check_status_and_event_id(where.status, NotificationStatus, where.event_id)
    return where


class NotificationAdmin:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        attempt_budget: int | None,
        bulk_limit: int,
        metrics: NotificationMetrics | None = None,
        on_reset: Callable[[Channel], None] | None = None,
    ) -> None:
        self._engine = engine
        self._budget = attempt_budget
        self._bulk_limit = bulk_limit
        self._metrics = metrics
        self._on_reset = on_reset  # wakes this instance's scheduler of the channel

    async def page(self, where: NotificationFilter, *, cursor: str | None = None, limit: int = 50) -> NotificationPage:
        before_id = page_start(cursor, limit)
        async with NotificationAdminUnitOfWork(self._engine) as uow:
            rows = await uow.notifications.select(validate_filter(where), before_id=before_id, limit=limit + 1)
        return NotificationPage(*page_end(rows, limit))

    async def get(self, notification_id: int) -> NotificationDetail:
        async with NotificationAdminUnitOfWork(self._engine) as uow:
            detail = await uow.notifications.detail(notification_id)
        if detail is None:
            raise NotificationNotFound(f"notification {notification_id} does not exist")
        return detail

    async def resend(self, notification_id: int, actor: Actor) -> NotificationView:
        async with NotificationAdminUnitOfWork(self._engine) as uow:
            record = await uow.notifications.lock(notification_id)
            if record is None:
                raise NotificationNotFound(f"notification {notification_id} does not exist")
            if record.status not in RESENDABLE:
                raise InvalidStatus(
                    f"notification {notification_id} is {record.status}; only {sorted(RESENDABLE)} are re-sent"
                )
            reset = await uow.notifications.resend(notification_id, self._budget)
            details = {"statusBefore": record.status, "attemptsBefore": record.attempts, "lastError": record.last_error}
            action = admin_action(
                actor,
                "resend_notification",
                1,
                system_code=Channel(record.channel).code,
                record_id=record.id,
                details=details,
            )
            await uow.audit.audit(action)
            await uow.commit()
        self._after_reset(actor, Channel(record.channel), 1)
        log.info("notification_resend", notification_id=notification_id, actor=actor.actor_id, channel=record.channel)
        return reset

    async def resend_all(
        self, channel: str, actor: Actor, *, status: str = NotificationStatus.FAILED, customer_id: str | None = None
    ) -> BulkResendResult:
        chosen = _channel(channel)
        if status not in RESENDABLE:
            raise ValidationError(f"status must be one of {sorted(RESENDABLE)}")
        async with NotificationAdminUnitOfWork(self._engine) as uow:
            records = await uow.notifications.resend_many(
                chosen.value, status, customer_id, budget=self._budget, limit=self._bulk_limit
            )
            ids = sorted(record.id for record in records)
            where: dict[str, object] = {"status": status}
            if customer_id is not None:
                where["customerId"] = customer_id
            await uow.audit.audit(
                admin_action(
                    actor,
                    "resend_notifications",
                    len(ids),
                    system_code=chosen.code,
                    where=where,
                    details={"notificationIds": ids},
                )
            )
            await uow.commit()
        self._after_reset(actor, chosen, len(ids))
        log.info("notifications_resend", channel=chosen.value, count=len(ids), actor=actor.actor_id)
        return BulkResendResult(chosen.value, status, len(ids), ids, limit_reached=len(ids) >= self._bulk_limit)

    def _after_reset(self, actor: Actor, channel: Channel, count: int) -> None:
        if self._metrics is not None:
            self._metrics.admin_resends.labels(channel, actor.channel).inc(count)
        if self._on_reset is not None and count:
            self._on_reset(channel)

"""Notification admin: the shared admin use cases (``admin.RecordAdmin``) for notification records.

A re-send resets a record that ended ``failed``, ``skipped_no_contact`` (contact data added since)
or ``skipped_stale`` to ``retrying`` with a full delivery deadline again (from its next attempt)
and, with a count cap, another ``CONNECTOR_NOTIFY_MAX_ATTEMPTS`` attempts; the channel's scheduler
in any connector instance then sends it, with the same ``Message-ID`` / ``Idempotency-Key``. A
``sent`` record is not re-sent (409): the customer has the message. Every re-send is written to
``sync.admin_actions`` like the external systems' retries.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connector_admin import BulkResendResult, Notification, NotificationDetail
from libs.kit.errors import NotFoundError
from services.sync_connector.admin import AdminKind, RecordAdmin
from services.sync_connector.notify.admin_store import NOTIFICATION_RECORDS, detail
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.records import NotificationStatus
from services.sync_connector.notify.settings import Channel

RESENDABLE = frozenset(
    {NotificationStatus.FAILED, NotificationStatus.SKIPPED_NO_CONTACT, NotificationStatus.SKIPPED_STALE}
)


class NotificationNotFound(NotFoundError, code="NOTIFICATION_NOT_FOUND", title="Notification record not found"): ...


NOTIFICATION_KIND: AdminKind[Notification, BulkResendResult] = AdminKind(
    table=NOTIFICATION_RECORDS,
    noun="notification",
    redriven="re-sent",
    not_found=NotificationNotFound,
    statuses=tuple(NotificationStatus),
    targets=tuple(channel.value for channel in Channel),
    redrivable=RESENDABLE,
    actions=("resend_notification", "resend_notifications"),
    audit_code=lambda channel: Channel(channel).code,
    audit_before=lambda record: {
        "statusBefore": record.status,
        "attemptsBefore": record.attempts,
        "lastError": record.last_error,
    },
    audit_ids_key="notificationIds",
    target_in_audit_filter=False,
    bulk_result=lambda channel, status, ids, limit_reached: BulkResendResult(
        channel, status, len(ids), ids, limit_reached
    ),
)


class NotificationAdmin(RecordAdmin[Notification, BulkResendResult]):
    """Customer notifications, and one of them with its event and every attempt."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        attempt_budget: int | None,
        bulk_limit: int,
        metrics: NotificationMetrics | None = None,
        on_reset: Callable[[Channel], None] | None = None,  # wakes this instance's scheduler of the channel
    ) -> None:
        def counted(channel: str, via: str, count: int) -> None:
            if metrics is not None:
                metrics.admin_resends.labels(channel, via).inc(count)
            if on_reset is not None and count:
                on_reset(Channel(channel))

        super().__init__(engine, NOTIFICATION_KIND, budget=attempt_budget, bulk_limit=bulk_limit, after_redrive=counted)

    async def get(self, notification_id: int) -> NotificationDetail:
        async with self._unit_of_work() as uow:
            found = await detail(uow.connection, notification_id)
        if found is None:
            raise NotificationNotFound(f"notification {notification_id} does not exist")
        return found

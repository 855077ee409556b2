"""``GET /v1/admin-notifications`` (newest first) and ``GET /v1/admin-notifications/{id}`` (VIEWER)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.params import PathParameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connector_admin import NO_NUL_PATTERN, AdminNotification, AdminNotificationPage
from libs.kit.errors import NotFoundError, ValidationError
from services.sync_connector.admin_http import RECORD_ID_PATTERN
from services.sync_connector.admin_notify.store import AdminStatus, AdminUnitOfWork
from services.sync_connector.auth import READ, requires
from services.sync_connector.http_support import problems

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
CAUSE_KEY_MAX_LENGTH = 100  # sync.admin_notifications.cause_key

NotificationId = Annotated[str, PathParameter(pattern=RECORD_ID_PATTERN, description="The notification's id (digits).")]
CauseFilter = Annotated[
    str | None,
    QueryParameter(min_length=1, max_length=CAUSE_KEY_MAX_LENGTH, pattern=NO_NUL_PATTERN, description="A cause key."),
]
StatusFilter = Annotated[str | None, QueryParameter(enum=list(AdminStatus.ALL))]
Before = Annotated[
    str | None,
    QueryParameter(pattern=RECORD_ID_PATTERN, description="The previous page's ``nextCursor``, to continue."),
]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Notifications per page.")]


class AdminNotificationNotFound(
    NotFoundError, code="ADMIN_NOTIFICATION_NOT_FOUND", title="Admin notification not found"
): ...


def admin_notification_routes(engine: AsyncEngine) -> list[HTTPRouteHandler]:
    @get(
        "/v1/admin-notifications",
        operation_id="listAdminNotifications",
        summary="The admins' notifications (one per cause and window), newest first",
        responses=problems(ValidationError),
        **requires(READ, "Newest first, a page at a time; nextCursor continues (null: the last page)."),
    )
    async def list_page(
        cause: CauseFilter = None, status: StatusFilter = None, cursor: Before = None, limit: Limit = DEFAULT_LIMIT
    ) -> AdminNotificationPage:
        if status is not None and status not in AdminStatus.ALL:
            raise ValidationError(f"status must be one of {', '.join(AdminStatus.ALL)}")
        before = None if cursor is None else int(cursor)
        async with AdminUnitOfWork(engine) as uow:
            items = await uow.admin.page(cause=cause, status=status, before=before, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return AdminNotificationPage(items, str(items[-1].id) if more else None)

    @get(
        "/v1/admin-notifications/{notification_id:str}",
        operation_id="getAdminNotification",
        summary="One admin notification",
        responses=problems(ValidationError, AdminNotificationNotFound),
        **requires(READ, "The window of one cause: its occurrences, examples and mail delivery."),
    )
    async def get_one(notification_id: NotificationId) -> AdminNotification:
        async with AdminUnitOfWork(engine) as uow:
            found = await uow.admin.get(int(notification_id))
        if found is None:
            raise AdminNotificationNotFound(f"admin notification {notification_id} not found")
        return found

    return [list_page, get_one]

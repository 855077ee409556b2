"""``GET /v1/admin-notifications`` (newest first) and ``GET /v1/admin-notifications/{id}`` (VIEWER)."""

from __future__ import annotations

import msgspec
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.errors import NotFoundError, ValidationError
from services.sync_connector.admin_http import _int, _query
from services.sync_connector.admin_notify.store import AdminNotificationView, AdminStatus, AdminUnitOfWork
from services.sync_connector.http_support import json_response

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class AdminNotificationNotFound(NotFoundError):
    code = "ADMIN_NOTIFICATION_NOT_FOUND"
    title = "Admin notification not found"


class AdminNotificationPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[AdminNotificationView]
    next_cursor: str | None


def admin_notification_routes(engine: AsyncEngine) -> list[web.RouteDef]:
    async def list_page(request: web.Request) -> web.Response:
        limit = _int(request.query.get("limit", str(DEFAULT_LIMIT)), "limit")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
        status = _query(request, "status")
        if status is not None and status not in AdminStatus.ALL:
            raise ValidationError(f"status must be one of {', '.join(AdminStatus.ALL)}")
        cursor = _query(request, "cursor")
        before = None if cursor is None else _int(cursor, "cursor")
        async with AdminUnitOfWork(engine) as uow:
            items = await uow.admin.page(cause=_query(request, "cause"), status=status, before=before, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return json_response(AdminNotificationPage(items, str(items[-1].id) if more else None))

    async def get_one(request: web.Request) -> web.Response:
        notification_id = _int(request.match_info["notification_id"], "admin notification id")
        async with AdminUnitOfWork(engine) as uow:
            found = await uow.admin.get(notification_id)
        if found is None:
            raise AdminNotificationNotFound(f"admin notification {notification_id} not found")
        return json_response(found)

    return [
        web.get("/v1/admin-notifications", list_page),
        web.get("/v1/admin-notifications/{notification_id}", get_one),
    ]

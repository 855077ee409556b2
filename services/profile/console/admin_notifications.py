"""Admin notification pages (seed 000 6.2 notifyAdmin), from the sync-connector's admin API: every mail to
the admins' list, one per cause and window, with how many occurrences it counted, its first examples and
whether it went out."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from libs.kit.errors import ValidationError
from services.profile.console.connector_client import ConnectorClient
from services.profile.console.context import console_of
from services.profile.console.forms import FieldProblems, PathId, choice, text, values
from services.profile.console.rendering import render
from services.profile.console.session import READ, caller

STATUSES = ("pending", "retrying", "sent", "failed")
FILTER_FIELDS = ("cause", "status")


@get("/admin-notifications", guards=READ, name="console:admin-notifications")
async def admin_notification_list(
    request: Request[Any, Any, Any], connector: NamedDependency[ConnectorClient]
) -> Template:
    raw = values(request, *FILTER_FIELDS, "cursor")
    problems = FieldProblems()
    cause = text(raw["cause"], "Cause", problems, max_length=100)
    status = choice(raw["status"], STATUSES, "Status", problems)
    page = None
    if not problems:
        limit = console_of(request).settings.page_size
        page = await connector.admin_notifications(
            caller(request), cause=cause, status=status, cursor=raw["cursor"] or None, limit=limit
        )
    context = {
        "filters": {k: raw[k] for k in FILTER_FIELDS},
        "statuses": STATUSES,
        "notifications": page.items if page else [],
        "next_cursor": page.next_cursor if page else None,
        "error": problems.text,
    }
    return render(
        request,
        "admin_notifications.html",
        context,
        page="admin-notifications",
        title="Admin notifications",
        status_code=422 if problems else 200,
    )


@get("/admin-notifications/{notification_id:str}", guards=READ)
async def admin_notification_detail(
    request: Request[Any, Any, Any], notification_id: PathId, connector: NamedDependency[ConnectorClient]
) -> Template:
    if not notification_id.isdigit():
        raise ValidationError(f"{notification_id!r} is not an admin notification id (a whole number)")
    notification = await connector.admin_notification(int(notification_id), caller(request))
    return render(
        request,
        "admin_notification.html",
        {"n": notification},
        page="admin-notifications",
        title=f"Admin notification {notification.id}",
    )

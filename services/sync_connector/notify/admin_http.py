"""Notification admin routes on the connector's API: list, inspect, re-send one or all of a channel."""

from __future__ import annotations

import msgspec
from aiohttp import web

from libs.kit.errors import ValidationError
from services.sync_connector.admin import DEFAULT_PAGE_SIZE

# The external systems' admin routes' request helpers: one way to name the actor and read parameters.
from services.sync_connector.admin_http import _actor, _int, _query
from services.sync_connector.http_support import json_response
from services.sync_connector.notify.admin import NotificationAdmin
from services.sync_connector.notify.admin_store import NotificationFilter
from services.sync_connector.notify.records import NotificationStatus

NOTIFICATION_ADMIN_KEY = web.AppKey("notification_admin", NotificationAdmin)


class BulkResendRequest(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    channel: str
    status: str = NotificationStatus.FAILED.value
    customer_id: str | None = None


async def _list(request: web.Request) -> web.Response:
    where = NotificationFilter(
        customer_id=_query(request, "customerId"),
        channel=_query(request, "channel"),
        status=_query(request, "status"),
        event_id=_query(request, "eventId"),
    )
    limit = _int(request.query.get("limit", str(DEFAULT_PAGE_SIZE)), "limit")
    page = await request.app[NOTIFICATION_ADMIN_KEY].page(where, cursor=_query(request, "cursor"), limit=limit)
    return json_response(page)


async def _get(request: web.Request) -> web.Response:
    notification_id = _int(request.match_info["notification_id"], "notification id")
    return json_response(await request.app[NOTIFICATION_ADMIN_KEY].get(notification_id))


async def _resend(request: web.Request) -> web.Response:
    actor = _actor(request)
    notification_id = _int(request.match_info["notification_id"], "notification id")
    return json_response(await request.app[NOTIFICATION_ADMIN_KEY].resend(notification_id, actor), status=202)


async def _resend_all(request: web.Request) -> web.Response:
    actor = _actor(request)
    try:
        body = msgspec.json.decode(await request.read(), type=BulkResendRequest)
    except msgspec.DecodeError as exc:  # ValidationError of msgspec is a DecodeError
        raise ValidationError(f"invalid body: {exc}") from exc
    result = await request.app[NOTIFICATION_ADMIN_KEY].resend_all(
        body.channel, actor, status=body.status, customer_id=body.customer_id
    )
    return json_response(result, status=202)


def notification_routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/notifications", _list),
        web.post("/v1/notifications/resend", _resend_all),
        web.get("/v1/notifications/{notification_id}", _get),
        web.post("/v1/notifications/{notification_id}/resend", _resend),
    ]

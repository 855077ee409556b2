"""Admin routes for every kind of delivery record: list, re-drive one, re-drive all of a system or channel.

The external systems' records under ``/v1/sync-records`` (``retry``) with a customer's sync status,
the customer notifications under ``/v1/notifications`` (``resend``) with one record in full.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from libs.kit.errors import ValidationError
from services.sync_connector.admin import DEFAULT_PAGE_SIZE, SYNC_KIND, Actor, AdminKind, RecordAdmin, SyncAdmin
from services.sync_connector.auth import principal
from services.sync_connector.http_support import json_response
from services.sync_connector.notify.admin import NOTIFICATION_KIND, NotificationAdmin

ADMIN_KEY = web.AppKey("admin", SyncAdmin)
NOTIFICATION_ADMIN_KEY = web.AppKey("notification_admin", NotificationAdmin)

AdminT = TypeVar("AdminT", bound=RecordAdmin[Any, Any])


def _actor(request: web.Request) -> Actor:
    """The verified token's subject (auth.py ran before any handler), never a header the caller writes."""
    return Actor(principal(request).subject, "http", ip=request.remote, user_agent=request.headers.get("User-Agent"))


def _query(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    return value or None


def _int(raw: str, what: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationError(f"{what} must be an integer") from exc


def record_routes(key: web.AppKey[AdminT], kind: AdminKind[Any, Any], path: str, verb: str) -> list[web.RouteDef]:
    """``GET {path}`` (the filter's fields, ``cursor``, ``limit``), ``POST {path}/{verb}`` (every record of a
    target in a status, of one customer when given) and ``POST {path}/{id}/{verb}``."""
    filter_fields = msgspec.structs.fields(kind.table.filter)
    bulk_request = msgspec.defstruct(
        f"Bulk{verb.capitalize()}Request",
        [(kind.table.target, str), ("status", str, "failed"), ("customer_id", str | None, None)],
        rename="camel",
        forbid_unknown_fields=True,
        frozen=True,
    )

    async def list_page(request: web.Request) -> web.Response:
        where = kind.table.filter(**{field.name: _query(request, field.encode_name) for field in filter_fields})
        limit = _int(request.query.get("limit", str(DEFAULT_PAGE_SIZE)), "limit")
        page = await request.app[key].list_records(where, cursor=_query(request, "cursor"), limit=limit)
        return json_response(page)

    async def redrive_one(request: web.Request) -> web.Response:
        actor = _actor(request)
        record_id = _int(request.match_info["record_id"], f"{kind.noun} id")
        return json_response(await request.app[key].redrive(record_id, actor), status=202)

    async def redrive_many(request: web.Request) -> web.Response:
        actor = _actor(request)
        try:
            body = msgspec.json.decode(await request.read(), type=bulk_request)
        except msgspec.DecodeError as exc:  # ValidationError of msgspec is a DecodeError
            raise ValidationError(f"invalid body: {exc}") from exc
        wanted = msgspec.structs.asdict(body)
        result = await request.app[key].redrive_many(
            wanted[kind.table.target], actor, status=wanted["status"], customer_id=wanted["customer_id"]
        )
        return json_response(result, status=202)

    return [
        web.get(path, list_page),
        web.post(f"{path}/{verb}", redrive_many),
        web.post(f"{path}/{{record_id}}/{verb}", redrive_one),
    ]


async def _sync_status(request: web.Request) -> web.Response:
    return json_response(await request.app[ADMIN_KEY].sync_status(request.match_info["customer_id"]))


def admin_routes() -> list[web.RouteDef]:
    """The external systems' records; ``GET /v1/sync-records/{id}`` is in ``admin_insight``."""
    return [
        *record_routes(ADMIN_KEY, SYNC_KIND, "/v1/sync-records", "retry"),
        web.get("/v1/sync-status/{customer_id}", _sync_status),
    ]


async def _notification(request: web.Request) -> web.Response:
    notification_id = _int(request.match_info["record_id"], "notification id")
    return json_response(await request.app[NOTIFICATION_ADMIN_KEY].get(notification_id))


def notification_routes() -> list[web.RouteDef]:
    """The customer notifications, and one of them with its event and attempts."""
    return [
        *record_routes(NOTIFICATION_ADMIN_KEY, NOTIFICATION_KIND, "/v1/notifications", "resend"),
        web.get("/v1/notifications/{record_id}", _notification),
    ]

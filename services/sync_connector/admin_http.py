"""Admin routes: list sync records, a customer's sync status, retry one record or all failed of a system."""

from __future__ import annotations

import msgspec
from aiohttp import web

from libs.kit.errors import ValidationError
from services.sync_connector.admin import DEFAULT_PAGE_SIZE, Actor, SyncAdmin
from services.sync_connector.admin_store import RecordFilter
from services.sync_connector.auth import principal
from services.sync_connector.http_support import json_response

ADMIN_KEY = web.AppKey("admin", SyncAdmin)


class BulkRetryRequest(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    system_code: str
    status: str = "failed"
    customer_id: str | None = None


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


async def _list_records(request: web.Request) -> web.Response:
    where = RecordFilter(
        customer_id=_query(request, "customerId"),
        system_code=_query(request, "systemCode"),
        status=_query(request, "status"),
        event_id=_query(request, "eventId"),
    )
    limit = _int(request.query.get("limit", str(DEFAULT_PAGE_SIZE)), "limit")
    page = await request.app[ADMIN_KEY].list_records(where, cursor=_query(request, "cursor"), limit=limit)
    return json_response(page)


async def _sync_status(request: web.Request) -> web.Response:
    return json_response(await request.app[ADMIN_KEY].sync_status(request.match_info["customer_id"]))


async def _retry_record(request: web.Request) -> web.Response:
    actor = _actor(request)
    record = await request.app[ADMIN_KEY].retry_record(_int(request.match_info["record_id"], "record id"), actor)
    return json_response(record, status=202)


async def _retry_failed(request: web.Request) -> web.Response:
    actor = _actor(request)
    try:
        body = msgspec.json.decode(await request.read(), type=BulkRetryRequest)
    except msgspec.DecodeError as exc:  # ValidationError of msgspec is a DecodeError
        raise ValidationError(f"invalid body: {exc}") from exc
    result = await request.app[ADMIN_KEY].retry_failed(
        body.system_code, actor, status=body.status, customer_id=body.customer_id
    )
    return json_response(result, status=202)


def admin_routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/sync-records", _list_records),
        web.post("/v1/sync-records/retry", _retry_failed),
        web.post("/v1/sync-records/{record_id}/retry", _retry_record),
        web.get("/v1/sync-status/{customer_id}", _sync_status),
    ]

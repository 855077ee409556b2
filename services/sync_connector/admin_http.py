"""Admin routes for every kind of delivery record: list, re-drive one, re-drive all of a system or channel.

The external systems' records under ``/v1/sync-records`` (``retry``) with a customer's sync status,
the customer notifications under ``/v1/notifications`` (``resend``) with one record in full. The
shapes are ``contracts.connector_admin``'s; the rules (statuses, targets, cursors) the use cases'.
"""

# No ``from __future__ import annotations``: a kind's parameter types are made when its routes are.

from operator import getitem
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.connector_admin import (
    CUSTOMER_ID_MAX_LENGTH,
    NO_NUL_PATTERN,
    BulkResendRequest,
    BulkResendResult,
    BulkRetryRequest,
    BulkRetryResult,
    CustomerSyncStatus,
    Notification,
    NotificationDetail,
    NotificationPage,
    SyncRecord,
    SyncRecordPage,
)
from libs.kit.errors import ValidationError
from services.sync_connector.admin import (
    CURSOR_PATTERN,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    UUID_PATTERN,
    InvalidStatus,
    RecordAdmin,
    SyncAdmin,
    SyncStatusNotFound,
)
from services.sync_connector.admin_store import Actor
from services.sync_connector.auth import CHANGE, READ, principal, requires
from services.sync_connector.http_support import problems
from services.sync_connector.notify.admin import NotificationAdmin, NotificationNotFound

RECORD_ID_PATTERN = "^[0-9]{1,18}$"  # an id column's range (bigint) holds every 18-digit number
RecordId = Annotated[str, PathParameter(pattern=RECORD_ID_PATTERN, description="The record's id (digits).")]
CustomerId = Annotated[
    str,
    PathParameter(min_length=1, max_length=CUSTOMER_ID_MAX_LENGTH, pattern=NO_NUL_PATTERN, description="Customer id."),
]
CustomerFilter = Annotated[
    str | None,
    QueryParameter(
        name="customerId", min_length=1, max_length=CUSTOMER_ID_MAX_LENGTH, pattern=NO_NUL_PATTERN, required=False
    ),
]
EventIdFilter = Annotated[str | None, QueryParameter(name="eventId", pattern=UUID_PATTERN, format="uuid")]
Cursor = Annotated[
    str | None,
    QueryParameter(pattern=CURSOR_PATTERN, description="The previous page's ``nextCursor`` (opaque), to continue."),
]
PageSize = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="Records per page.")]


def actor(request: Request[Any, Any, Any]) -> Actor:
    """The verified token's subject (the route's guard ran first), never a header the caller writes."""
    user_agent = request.headers.get("User-Agent")
    return Actor(
        principal(request).subject, "http", ip=request.client.host if request.client else None, user_agent=user_agent
    )


def _page(page_type: type[msgspec.Struct], description: str) -> dict[int, ResponseSpec]:
    return {200: ResponseSpec(page_type, description=description), **problems(ValidationError)}


def record_routes(
    admin: RecordAdmin[Any, Any],
    *,
    path: str,
    verb: str,
    names: tuple[str, str],  # (one, many) in operation ids: ("SyncRecord", "SyncRecords")
    view: tuple[type[msgspec.Struct], type[msgspec.Struct]],  # (one record, a page)
    bulk: tuple[str, str, type[msgspec.Struct], type[msgspec.Struct]],  # (operation id, summary, request, result)
) -> list[HTTPRouteHandler]:
    """``GET {path}`` (the kind's filters, ``cursor``, ``limit``), ``POST {path}/{id}/{verb}`` and the bulk
    ``POST {path}/{verb}``."""
    kind = admin.kind
    one, many = names
    TargetFilter = Annotated[  # noqa: N806 - a type
        str | None, QueryParameter(name=kind.target_param, enum=sorted(map(str, kind.targets)))
    ]
    StatusFilter = Annotated[str | None, QueryParameter(enum=sorted(map(str, kind.statuses)))]  # noqa: N806

    @get(
        path,
        operation_id=f"list{many}",
        summary=f"List {kind.noun}s, newest first",
        responses=_page(view[1], "One page, newest first; nextCursor continues it (null: the last page)"),
        **requires(READ, f"The {kind.noun}s that match every filter given, newest first, a page at a time."),
    )
    async def list_page(
        *,
        customer_id: CustomerFilter = None,
        target: TargetFilter = None,
        status: StatusFilter = None,
        event_id: EventIdFilter = None,
        cursor: Cursor = None,
        limit: PageSize = DEFAULT_PAGE_SIZE,
    ) -> Any:
        where = kind.table.filter(
            customer_id=customer_id, status=status, event_id=event_id, **{kind.table.target: target}
        )
        page = await admin.list_records(where, cursor=cursor, limit=limit)
        return view[1](page.items, page.next_cursor)

    redrivable = ", ".join(sorted(map(str, kind.redrivable)))

    @post(
        f"{path}/{{record_id:str}}/{verb}",
        status_code=202,
        operation_id=f"{verb}{one}",
        summary=f"{verb.capitalize()} one {kind.noun}",
        responses={
            202: ResponseSpec(view[0], description=f"The {kind.noun}, {kind.redriven} from now"),
            **problems(ValidationError, kind.not_found, InvalidStatus),
        },
        **requires(
            CHANGE,
            f"Back to retrying now, with a full delivery budget again; only a {kind.noun} in a status of "
            f"{redrivable} (409 INVALID_STATUS otherwise). Audited with the token's subject.",
        ),
    )
    async def redrive_one(request: Request[Any, Any, Any], record_id: RecordId) -> Any:
        return await admin.redrive(int(record_id), actor(request))

    return [list_page, redrive_one, bulk_route(admin, f"{path}/{verb}", bulk)]


def bulk_route(
    admin: RecordAdmin[Any, Any], path: str, bulk: tuple[str, str, type[msgspec.Struct], type[msgspec.Struct]]
) -> HTTPRouteHandler:
    """``POST {path}``: a bulk re-drive; its body names the system or channel, the status, the customer."""
    operation_id, summary, body, result = bulk
    target = admin.kind.table.target  # the body's field naming the system or channel

    async def redrive_many(request: Request[Any, Any, Any], data: Any) -> Any:
        wanted = actor(request)
        return await admin.redrive_many(getattr(data, target), wanted, status=data.status, customer_id=data.customer_id)

    # The kind's request and result types, for decoding and the OpenAPI document (made at run time, as above).
    redrive_many.__annotations__["data"] = getitem(JSONBody, body)
    redrive_many.__annotations__["return"] = result
    return post(
        path,
        status_code=202,
        operation_id=operation_id,
        summary=summary,
        responses={202: ResponseSpec(result, description="What was re-driven"), **problems(ValidationError)},
        **requires(
            CHANGE,
            "Every record of the system or channel in the status (of one customer, when given), up to the "
            "connector's bulk limit (limitReached: call again). Audited with the token's subject.",
        ),
    )(redrive_many)


def sync_routes(admin: SyncAdmin) -> list[HTTPRouteHandler]:
    """The external systems' records; ``GET /v1/sync-records/{id}`` is in ``admin_insight``."""

    @get(
        "/v1/sync-status/{customer_id:str}",
        operation_id="getSyncStatus",
        summary="A customer's latest record at every system",
        responses={200: ResponseSpec(CustomerSyncStatus), **problems(ValidationError, SyncStatusNotFound)},
        **requires(READ, "The latest record of the customer at each system (404 when the connector has none)."),
    )
    async def sync_status(customer_id: CustomerId) -> CustomerSyncStatus:
        return await admin.sync_status(customer_id)

    records = record_routes(
        admin,
        path="/v1/sync-records",
        verb="retry",
        names=("SyncRecord", "SyncRecords"),
        view=(SyncRecord, SyncRecordPage),
        bulk=("retryFailedSyncRecords", "Retry every failed record of a system", BulkRetryRequest, BulkRetryResult),
    )
    return [*records, sync_status]


def notification_routes(admin: NotificationAdmin) -> list[HTTPRouteHandler]:
    """The customer notifications, and one of them with its event and attempts."""

    @get(
        "/v1/notifications/{record_id:str}",
        operation_id="getNotification",
        summary="One notification with its event and attempts",
        responses={200: ResponseSpec(NotificationDetail), **problems(ValidationError, NotificationNotFound)},
        **requires(READ, "The notification, what its event says and every attempt, oldest first."),
    )
    async def notification(record_id: RecordId) -> NotificationDetail:
        return await admin.get(int(record_id))

    records = record_routes(
        admin,
        path="/v1/notifications",
        verb="resend",
        names=("Notification", "Notifications"),
        view=(Notification, NotificationPage),
        bulk=(
            "resendNotifications",
            "Re-send every notification of a channel in a status",
            BulkResendRequest,
            BulkResendResult,
        ),
    )
    return [*records, notification]

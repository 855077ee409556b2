"""Admin API on the outbox: list and inspect entries, re-drive them (audited with the caller)."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter

from libs.outbox.admin import OutboxEntry, OutboxEntrySummary, OutboxFilter
from libs.outbox.table import OutboxStatus
from services.profile.access.auth import Role, requires
from services.profile.outbox_admin.service import (
    OutboxAdminService,
    OutboxEntryNotFound,
    RedriveResult,
    RedriveSelection,
)
from services.profile.shared.results import Actor
from services.profile.shared.web import examples as ex
from services.profile.shared.web.params import TimeText, instant, time_query
from services.profile.shared.web.schemas import Request

AggregateId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
DEFAULT_PAGE_SIZE = 50
MAX_REDRIVE_IDS = 1_000


class OutboxPageResponse(msgspec.Struct, rename="camel", frozen=True):
    items: list[OutboxEntrySummary]
    # Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


_NULL = Schema(type=OpenAPIType.NULL)
_BY_IDS = Schema(
    required=["ids"],
    properties={"ids": Schema(type=OpenAPIType.ARRAY), **dict.fromkeys(("status", "customerId", "from", "to"), _NULL)},
)
_BY_FILTER = Schema(
    required=["status"],
    properties={"ids": _NULL, "status": Schema(enum=[OutboxStatus.FAILED.value, OutboxStatus.PUBLISHED.value])},
)


class RedriveRequest(Request, frozen=True):
    """``{"ids": [...]}`` or a filter ``{"status": "failed", "customerId": ..., "from": ..., "to": ...}``."""

    # The document states the rule ``selection`` and the service enforce: ids, or a filter by a re-drivable status.
    openapi_rule: ClassVar[Schema] = Schema(one_of=[_BY_IDS, _BY_FILTER])

    ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=MAX_REDRIVE_IDS)] | None = None
    status: OutboxStatus | None = None
    customer_id: AggregateId | None = None
    created_from: TimeText | None = msgspec.field(default=None, name="from")
    created_to: TimeText | None = msgspec.field(default=None, name="to")

    def selection(self) -> RedriveSelection:
        filter_given = any(v is not None for v in (self.status, self.customer_id, self.created_from, self.created_to))
        created = instant(self.created_from, "from", "body"), instant(self.created_to, "to", "body")
        where = OutboxFilter(self.status, self.customer_id, *created)
        return RedriveSelection(ids=tuple(self.ids or ()), where=where if filter_given else None)


class OutboxAdminController(Controller):
    path = "/v1/admin/outbox"
    tags = ["admin: outbox"]  # noqa: RUF012

    @get("/", guards=[requires(Role.ADMIN)], responses=ex.problems())
    async def list_entries(
        self,
        *,
        outbox_admin: NamedDependency[OutboxAdminService],
        status: FromQuery[OutboxStatus | None] = None,
        customer_id: Annotated[str | None, QueryParameter(name="customerId", max_length=64)] = None,
        created_from: Annotated[str | None, time_query("from", "inclusive")] = None,
        created_to: Annotated[str | None, time_query("to", "exclusive")] = None,
        cursor: Annotated[int | None, QueryParameter(ge=0, description="nextCursor of the previous page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, description="page size, bounded by the admin maximum")] = (
            DEFAULT_PAGE_SIZE
        ),
    ) -> OutboxPageResponse:
        """Entries in commit (``seq``) order, filtered by status, customer and creation time [from, to)."""
        page = await outbox_admin.list_entries(
            OutboxFilter(status, customer_id, instant(created_from, "from"), instant(created_to, "to")), cursor, limit
        )
        next_cursor = str(page.next_after) if page.next_after is not None else None
        return OutboxPageResponse([e.summary() for e in page.items], next_cursor)

    @get("/{entry_id:str}", guards=[requires(Role.ADMIN)], responses=ex.problems("OUTBOX_ENTRY_NOT_FOUND"))
    async def get_entry(
        self, entry_id: Annotated[str, PathParameter(max_length=64)], outbox_admin: NamedDependency[OutboxAdminService]
    ) -> OutboxEntry:
        try:
            parsed = uuid.UUID(entry_id)
        except ValueError:
            raise OutboxEntryNotFound(f"outbox entry {entry_id} not found (not a UUID)") from None
        return await outbox_admin.get(parsed)

    @post(
        "/redrive",
        guards=[requires(Role.ADMIN)],
        status_code=200,
        responses=ex.problems("OUTBOX_ENTRY_NOT_FOUND", "INVALID_OUTBOX_FILTER", "REDRIVE_LIMIT_EXCEEDED"),
    )
    async def redrive(
        self,
        data: JSONBody[RedriveRequest],
        outbox_admin: NamedDependency[OutboxAdminService],
        actor: NamedDependency[Actor],
    ) -> RedriveResult:
        """Set failed or published entries back to pending; per-customer order is kept (see README)."""
        return await outbox_admin.redrive(data.selection(), actor)

"""The operation log, read over HTTP (seed 004)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from services.profile.access.audit_schemas import AuditLogItem, AuditLogPage
from services.profile.access.auth import Role, requires
from services.profile.shared.audit import AuditLogService
from services.profile.shared.ports import AuditFilter
from services.profile.shared.web import examples as ex
from services.profile.shared.web.params import Cursor, Limit, instant, time_query
from services.profile.shared.web.routes import Routes, page_body, page_ok, route


class AuditLogController(Routes, path="/v1/audit-logs", tag="operation log"):
    @route(get, "/", requires(Role.VIEWER), page_ok(AuditLogPage, ex.AUDIT_ITEM, "Newest first"), "VALIDATION")
    async def list_audit_logs(
        self,
        *,
        audit_log: NamedDependency[AuditLogService],
        customer_id: Annotated[str | None, QueryParameter(name="customerId", max_length=64)] = None,
        actor_id: Annotated[str | None, QueryParameter(name="actorId", max_length=100)] = None,
        event_type: Annotated[
            str | None, QueryParameter(name="eventType", max_length=50, description="e.g. CUSTOMER_UPDATED")
        ] = None,
        time_from: Annotated[str | None, time_query("from", "at or after")] = None,
        time_to: Annotated[str | None, time_query("to", "before")] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> AuditLogPage:
        """The append-only operation log. Contact data never appears in it: ``changedFields`` names
        a changed phone, e-mail or address without its value."""
        filters = AuditFilter(customer_id, actor_id, event_type, instant(time_from, "from"), instant(time_to, "to"))
        return page_body(AuditLogPage, await audit_log.page(filters, cursor, limit), AuditLogItem.of)

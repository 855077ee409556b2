"""The operation log: filter by actor, customer, event and time; newest first."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from services.profile.console.context import console_of
from services.profile.console.forms import FieldProblems, moment, ordered_range, text, values
from services.profile.console.rendering import render_listing
from services.profile.console.session import READ
from services.profile.outbox_admin.service import REDRIVEN_EVENT
from services.profile.shared.audit import AuditEvent, AuditLogService
from services.profile.shared.ports import AuditFilter

FILTER_FIELDS = ("actorId", "customerId", "eventType", "from", "to")
EVENT_TYPES = sorted([*(e.value for e in AuditEvent), REDRIVEN_EVENT])


@get("/audit", guards=READ, name="console:audit")
async def audit_log(request: Request[Any, Any, Any], audit_log: NamedDependency[AuditLogService]) -> Template:
    raw = values(request, *FILTER_FIELDS, "cursor")
    problems = FieldProblems()
    time_from = moment(raw["from"], "From", problems)
    time_to = moment(raw["to"], "To", problems)
    ordered_range(time_from, time_to, problems)
    filters = AuditFilter(
        actor_id=text(raw["actorId"], "Actor", problems, max_length=100),
        customer_id=text(raw["customerId"], "Customer id", problems),
        event_type=text(raw["eventType"], "Event", problems),
        time_from=time_from,
        time_to=time_to,
    )
    page = None
    if not problems:
        page = await audit_log.page(filters, raw["cursor"] or None, console_of(request).settings.page_size)
    choices = {"event_types": EVENT_TYPES}
    return render_listing(
        request, "audit.html", raw, FILTER_FIELDS, problems, page, choices, page="audit", title="Audit log"
    )

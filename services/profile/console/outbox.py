"""Outbox pages: filter and page through entries, inspect one, re-drive one, a selection or a filter.

A re-drive always goes through a confirmation page that says how many entries it touches;
the change itself is the outbox admin use case (one audited transaction, ``OUTBOX_REDRIVEN``
with the signed-in person as actor), then the browser is redirected (POST-redirect-GET).
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from libs.kit.errors import ValidationError
from libs.outbox.admin import OutboxEntry, OutboxFilter
from libs.outbox.table import OutboxStatus
from services.profile.console.context import console_of
from services.profile.console.forms import (
    FieldProblems,
    PathId,
    choice,
    moment,
    number,
    ordered_range,
    text,
    values,
)
from services.profile.console.metrics import counted
from services.profile.console.rendering import render, see_other
from services.profile.console.session import ADMINISTER, safe_next, submitted
from services.profile.outbox_admin.service import OutboxAdminService, OutboxEntryNotFound, RedriveSelection

REDRIVABLE = (OutboxStatus.FAILED.value, OutboxStatus.PUBLISHED.value)
FILTER_FIELDS = ("status", "customerId", "from", "to")
MAX_SELECTION = 1_000
SHOWN_IN_CONFIRMATION = 50


def _filter(raw: dict[str, str], problems: FieldProblems) -> OutboxFilter:
    status = choice(raw["status"], [s.value for s in OutboxStatus], "Status", problems)
    created_from = moment(raw["from"], "From", problems)
    created_to = moment(raw["to"], "To", problems)
    ordered_range(created_from, created_to, problems)
    return OutboxFilter(
        status=OutboxStatus(status) if status else None,
        aggregate_id=text(raw["customerId"], "Customer id", problems),
        created_from=created_from,
        created_to=created_to,
    )


def _entry_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise OutboxEntryNotFound(f"there is no outbox entry {raw!r} (not a UUID)") from None


@get("/outbox", guards=ADMINISTER, name="console:outbox")
async def outbox_list(request: Request[Any, Any, Any], outbox_admin: NamedDependency[OutboxAdminService]) -> Template:
    raw = values(request, *FILTER_FIELDS, "cursor")
    problems = FieldProblems()
    where = _filter(raw, problems)
    cursor = number(raw["cursor"], "Cursor", problems)
    page = None
    if not problems:
        limit = min(console_of(request).settings.page_size, outbox_admin.limits.max_page_size)
        page = await outbox_admin.list_entries(where, cursor, limit)
    context = {
        "filters": {k: raw[k] for k in FILTER_FIELDS},
        "statuses": [s.value for s in OutboxStatus],
        "page_items": page.items if page else [],
        "next_cursor": page.next_after if page else None,
        "redrivable": REDRIVABLE,
        "filter_redrivable": raw["status"] in REDRIVABLE and not problems,
        "error": problems.text,
    }
    status_code = 422 if problems else 200
    return render(request, "outbox_list.html", context, page="outbox", title="Outbox", status_code=status_code)


@get("/outbox/{entry_id:str}", guards=ADMINISTER)
async def outbox_entry(
    request: Request[Any, Any, Any], entry_id: PathId, outbox_admin: NamedDependency[OutboxAdminService]
) -> Template:
    entry = await outbox_admin.get(_entry_id(entry_id))
    context = {"entry": entry, "redrivable": entry.status in REDRIVABLE}
    return render(request, "outbox_entry.html", context, page="outbox", title=f"Outbox entry {entry.seq}")


async def _count_matching(outbox_admin: OutboxAdminService, where: OutboxFilter) -> tuple[int, list[OutboxEntry]]:
    """How many entries the filter re-drives (stops counting past the re-drive limit), and the first ones."""
    limit = outbox_admin.limits.max_page_size
    cap = outbox_admin.limits.redrive_max_rows
    first: list[OutboxEntry] = []
    count, after = 0, None
    while True:
        page = await outbox_admin.list_entries(where, after, limit)
        count += len(page.items)
        first.extend(page.items[: SHOWN_IN_CONFIRMATION - len(first)])
        if page.next_after is None or count > cap:
            return count, first
        after = page.next_after


@get("/outbox/redrive", guards=ADMINISTER)
async def confirm_redrive(
    request: Request[Any, Any, Any], outbox_admin: NamedDependency[OutboxAdminService]
) -> Template:
    """The confirmation: the selected ids (``?id=...``) or every entry matching a filter (``?mode=filter``)."""
    problems = FieldProblems()
    raw = values(request, *FILTER_FIELDS)
    if request.query_params.get("mode") == "filter":
        where = _filter(raw, problems)
        if where.status is None or where.status.value not in REDRIVABLE:
            problems.add("Re-driving by filter needs the status 'failed' or 'published'.")
        if problems:
            raise ValidationError(" ".join(problems.messages))
        count, shown = await _count_matching(outbox_admin, where)
        too_many = count > outbox_admin.limits.redrive_max_rows
        ids: list[str] = []
        skipped = 0
    else:
        ids = list(dict.fromkeys(request.query_params.getall("id", [])))
        if not ids:
            raise ValidationError("Select at least one entry to re-drive.")
        if len(ids) > MAX_SELECTION:
            raise ValidationError(f"Select at most {MAX_SELECTION} entries at a time, or re-drive by filter.")
        entries = [await outbox_admin.get(_entry_id(i)) for i in ids]
        shown = [e for e in entries if e.status in REDRIVABLE][:SHOWN_IN_CONFIRMATION]
        count = sum(1 for e in entries if e.status in REDRIVABLE)
        skipped = len(entries) - count
        too_many = False
    context = {
        "mode": "filter" if not ids else "ids",
        "ids": ids,
        "filters": raw,
        "count": count,
        "skipped": skipped,
        "shown": shown,
        "too_many": too_many,
        "limit": outbox_admin.limits.redrive_max_rows,
        "return_to": safe_next(request.query_params.get("return_to") or "/console/outbox"),
    }
    return render(request, "outbox_confirm.html", context, page="outbox", title="Confirm re-drive")


@post("/outbox/redrive", guards=ADMINISTER)
async def redrive(request: Request[Any, Any, Any], outbox_admin: NamedDependency[OutboxAdminService]) -> Redirect:
    form, actor = await submitted(request)
    problems = FieldProblems()
    if form.get("mode") == "filter":
        raw = {name: str(form.get(name) or "").strip() for name in FILTER_FIELDS}
        where = _filter(raw, problems)
        selection = RedriveSelection(where=where)
    else:
        selection = RedriveSelection(ids=tuple(_entry_id(str(i)) for i in form.getall("id", [])))
    if problems:
        raise ValidationError(" ".join(problems.messages))
    result = await counted(request, "outbox_redrive", outbox_admin.redrive(selection, actor))
    notice = "redriven" if result.redriven else "redriven-none"
    return see_other(safe_next(str(form.get("return_to") or "")), notice=notice, n=result.redriven)

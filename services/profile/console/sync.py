"""Sync record pages, from the sync-connector's admin API: per customer and per system, one record
with every attempt, and retries of failed records (one, or every failed one of a system).

Retries are the connector's use cases; the console forwards the signed-in person's token, so
the connector checks their role and writes them into its own audit (``sync.admin_actions``).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from libs.kit.errors import ValidationError
from services.profile.console.connector_api import RecordFilter
from services.profile.console.connector_client import ConnectorClient
from services.profile.console.context import console_of
from services.profile.console.forms import FieldProblems, PathId, choice, text, values
from services.profile.console.metrics import counted
from services.profile.console.rendering import render, see_other
from services.profile.console.session import ADMINISTER, READ, caller, verified_form

SYSTEMS = ("CRM", "CMS", "CSS")
STATUSES = ("pending", "retrying", "failed", "success", "superseded")
FILTER_FIELDS = ("customerId", "system", "status")
# Counting a customer's failed records for the confirmation reads at most this many pages.
MAX_COUNT_PAGES = 20


def _filter(raw: dict[str, str], problems: FieldProblems) -> RecordFilter:
    return RecordFilter(
        customer_id=text(raw["customerId"], "Customer id", problems, max_length=50),
        system_code=choice(raw["system"], SYSTEMS, "System", problems),
        status=choice(raw["status"], STATUSES, "Status", problems),
    )


def _record_id(raw: str) -> int:
    if not raw.isdigit():
        raise ValidationError(f"{raw!r} is not a sync record id (a whole number)")
    return int(raw)


@get("/sync", guards=READ, name="console:sync")
async def sync_list(request: Request[Any, Any, Any], connector: NamedDependency[ConnectorClient]) -> Template:
    raw = values(request, *FILTER_FIELDS, "cursor")
    problems = FieldProblems()
    where = _filter(raw, problems)
    page = None
    if not problems:
        limit = console_of(request).settings.page_size
        page = await connector.list_records(where, caller(request), cursor=raw["cursor"] or None, limit=limit)
    context = {
        "filters": {k: raw[k] for k in FILTER_FIELDS},
        "systems": SYSTEMS,
        "statuses": STATUSES,
        "records": page.items if page else [],
        "next_cursor": page.next_cursor if page else None,
        "error": problems.text,
    }
    status_code = 422 if problems else 200
    return render(request, "sync_list.html", context, page="sync", title="Sync records", status_code=status_code)


@get("/sync/retry-failed", guards=ADMINISTER)
async def confirm_retry_failed(
    request: Request[Any, Any, Any], connector: NamedDependency[ConnectorClient]
) -> Template:
    raw = values(request, "system", "customerId")
    problems = FieldProblems()
    system = choice(raw["system"], SYSTEMS, "System", problems)
    customer_id = text(raw["customerId"], "Customer id", problems, max_length=50)
    if problems or system is None:
        raise ValidationError(problems.text or "Choose the system whose failed records to retry.")
    count = await _failed_count(connector, request, system, customer_id)
    context = {"system": system, "customer_id": customer_id or "", "count": count}
    return render(request, "sync_confirm_many.html", context, page="sync", title="Confirm retry")


async def _failed_count(
    connector: ConnectorClient, request: Request[Any, Any, Any], system: str, customer_id: str | None
) -> int:
    who = caller(request)
    if customer_id is None:
        status = await connector.pipeline_status(who)
        return next((s.counts.get("failed", 0) for s in status.systems if s.system_code == system), 0)
    where = RecordFilter(customer_id=customer_id, system_code=system, status="failed")
    count, cursor = 0, None
    for _ in range(MAX_COUNT_PAGES):
        page = await connector.list_records(where, who, cursor=cursor, limit=500)
        count += len(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return count


@post("/sync/retry-failed", guards=ADMINISTER)
async def retry_failed(request: Request[Any, Any, Any], connector: NamedDependency[ConnectorClient]) -> Redirect:
    form = await verified_form(request)
    problems = FieldProblems()
    system = choice(str(form.get("system") or ""), SYSTEMS, "System", problems)
    customer_id = text(str(form.get("customerId") or "").strip(), "Customer id", problems, max_length=50)
    if problems or system is None:
        raise ValidationError(problems.text or "Choose the system whose failed records to retry.")
    result = await counted(request, "sync_retry_failed", connector.retry_failed(system, customer_id, caller(request)))
    notice = "retried-limit" if result.limit_reached else "retried-many"
    return see_other("/console/sync", system=system, customerId=customer_id, notice=notice, n=result.count)


@get("/sync/{record_id:str}", guards=READ)
async def sync_record(
    request: Request[Any, Any, Any], record_id: PathId, connector: NamedDependency[ConnectorClient]
) -> Template:
    record = await connector.record(_record_id(record_id), caller(request))
    context = {"record": record}
    return render(request, "sync_record.html", context, page="sync", title=f"Sync record {record.id}")


@get("/sync/{record_id:str}/retry", guards=ADMINISTER)
async def confirm_retry(
    request: Request[Any, Any, Any], record_id: PathId, connector: NamedDependency[ConnectorClient]
) -> Template:
    record = await connector.record(_record_id(record_id), caller(request))
    return render(request, "sync_confirm.html", {"record": record}, page="sync", title="Confirm retry")


@post("/sync/{record_id:str}/retry", guards=ADMINISTER)
async def retry(
    request: Request[Any, Any, Any], record_id: PathId, connector: NamedDependency[ConnectorClient]
) -> Redirect:
    await verified_form(request)
    parsed = _record_id(record_id)
    await counted(request, "sync_retry", connector.retry_record(parsed, caller(request)))
    return see_other(f"/console/sync/{parsed}", notice="retried")

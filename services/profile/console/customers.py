"""Customers and applications: search (name, code, company, industry, region, sales person...), a
profile (its whole record) with its name history and sync status across the external systems,
the recycle bin (move in, restore out), applications (pending first, re-apply a failed one).
Every change goes through a confirmation page and the ledger's use cases; the record's forms,
versions and rollback are in ``customer_records``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from libs.kit.errors import AppError
from services.profile.console.connector_client import ConnectorClient
from services.profile.console.context import console_of
from services.profile.console.forms import FieldProblems, PathId, choice, moment, text, values
from services.profile.console.metrics import counted
from services.profile.console.rendering import render, render_listing, see_other
from services.profile.console.session import OPERATE, READ, caller, submitted
from services.profile.customers.service import CustomerService
from services.profile.domain.model import AccountType, ApplicationOrigin, ApplicationStatus, CustomerStatus
from services.profile.name_changes.service import NameChangeService
from services.profile.shared.ports import ApplicationFilter, CustomerFilter

SEARCH_FIELDS = (
    "customerId",
    "name",
    "match",
    "status",
    "accountType",
    "customerCode",
    "company",
    "industry",
    "region",
    "salesPerson",
)
APPLICATION_FIELDS = ("status", "customerId", "origin", "from", "to")
APPLICATIONS_ON_PROFILE = 20


def _page_size(request: Request[Any, Any, Any]) -> int:
    return int(console_of(request).settings.page_size)


def _customer_path(customer_id: str) -> str:
    return f"/console/customers/{quote(customer_id, safe='')}"


@get("/customers", guards=READ, name="console:customers")
async def customer_search(
    request: Request[Any, Any, Any], customers: NamedDependency[CustomerService]
) -> Template | Redirect:
    raw = values(request, *SEARCH_FIELDS, "cursor")
    if raw["customerId"]:
        return see_other(_customer_path(raw["customerId"][:64]))
    problems = FieldProblems()
    name = text(raw["name"], "Name", problems, max_length=200)
    status = choice(raw["status"], [s.value for s in CustomerStatus], "Status", problems)
    account_type = choice(raw["accountType"], [a.value for a in AccountType], "Account type", problems)
    prefix = raw["match"] == "prefix"
    filters = CustomerFilter(
        status=CustomerStatus(status) if status else None,
        account_type=AccountType(account_type) if account_type else None,
        name_contains=None if prefix else name,
        name_prefix=name if prefix else None,
        customer_code=text(raw["customerCode"], "Customer code", problems, max_length=100),
        company_contains=text(raw["company"], "Company", problems, max_length=200),
        industry=text(raw["industry"], "Industry", problems, max_length=100),
        region=text(raw["region"], "Region", problems, max_length=100),
        sales_person=text(raw["salesPerson"], "Sales person", problems, max_length=100),
    )
    page = None if problems else await customers.page(filters, raw["cursor"] or None, _page_size(request))
    choices = {"statuses": [s.value for s in CustomerStatus], "account_types": [a.value for a in AccountType]}
    return render_listing(
        request, "customers.html", raw, SEARCH_FIELDS, problems, page, choices, page="customers", title="Customers"
    )


@get("/customers/{customer_id:str}", guards=READ)
async def customer_profile(
    request: Request[Any, Any, Any],
    customer_id: PathId,
    customers: NamedDependency[CustomerService],
    name_changes: NamedDependency[NameChangeService],
    connector: NamedDependency[ConnectorClient],
) -> Template:
    customer = await customers.get(customer_id)
    history = await customers.name_history(customer_id)
    applications = await name_changes.page(ApplicationFilter(customer_id=customer_id), None, APPLICATIONS_ON_PROFILE)
    sync_status, sync_error = None, None
    try:
        sync_status = await connector.sync_status(customer_id, caller(request))
    except AppError as exc:  # the profile is still worth showing without it
        sync_error = exc.detail
    context = {
        "customer": customer,
        "history": history,
        "applications": applications.items,
        "sync_status": sync_status,
        "sync_error": sync_error,
    }
    return render(request, "customer.html", context, page="customers", title=f"Customer {customer_id}")


@get("/customers/{customer_id:str}/delete", guards=OPERATE)
async def confirm_delete(
    request: Request[Any, Any, Any], customer_id: PathId, customers: NamedDependency[CustomerService]
) -> Template:
    customer = await customers.get(customer_id)
    retention = console_of(request).recycle_bin_retention_days
    context = {"customer": customer, "retention_days": retention}
    return render(request, "customer_delete.html", context, page="customers", title="Confirm")


@post("/customers/{customer_id:str}/delete", guards=OPERATE)
async def delete_customer(
    request: Request[Any, Any, Any], customer_id: PathId, customers: NamedDependency[CustomerService]
) -> Redirect:
    form, actor = await submitted(request)
    version = str(form.get("version") or "")
    expected = int(version) if version.isdigit() else None
    await counted(request, "customer_delete", customers.delete(customer_id, expected, actor))
    return see_other("/console/recycle-bin", notice="deleted")


@get("/recycle-bin", guards=READ, name="console:recycle-bin")
async def recycle_bin(request: Request[Any, Any, Any], customers: NamedDependency[CustomerService]) -> Template:
    cursor = request.query_params.get("cursor") or None
    page = await customers.recycle_bin(cursor, _page_size(request))
    retention = timedelta(days=console_of(request).recycle_bin_retention_days)
    context = {"items": page.items, "next_cursor": page.next_cursor, "retention": retention}
    return render(request, "recycle_bin.html", context, page="recycle-bin", title="Recycle bin")


@get("/recycle-bin/{customer_id:str}/restore", guards=OPERATE)
async def confirm_restore(request: Request[Any, Any, Any], customer_id: PathId) -> Template:
    context = {"customer_id": customer_id}
    return render(request, "recycle_restore.html", context, page="recycle-bin", title="Confirm restore")


@post("/recycle-bin/{customer_id:str}/restore", guards=OPERATE)
async def restore_customer(
    request: Request[Any, Any, Any], customer_id: PathId, customers: NamedDependency[CustomerService]
) -> Redirect:
    actor = (await submitted(request)).actor
    await counted(request, "customer_restore", customers.restore(customer_id, actor))
    return see_other(_customer_path(customer_id), notice="restored")


@get("/applications", guards=READ, name="console:applications")
async def applications(request: Request[Any, Any, Any], name_changes: NamedDependency[NameChangeService]) -> Template:
    raw = values(request, *APPLICATION_FIELDS, "cursor")
    if not request.query_params:
        raw["status"] = ApplicationStatus.PENDING.value  # what needs attention first
    problems = FieldProblems()
    status = choice(raw["status"], [s.value for s in ApplicationStatus], "Status", problems)
    origin = choice(raw["origin"], [o.value for o in ApplicationOrigin], "Origin", problems)
    filters = ApplicationFilter(
        status=ApplicationStatus(status) if status else None,
        customer_id=text(raw["customerId"], "Customer id", problems),
        origin=ApplicationOrigin(origin) if origin else None,
        created_from=moment(raw["from"], "From", problems),
        created_to=moment(raw["to"], "To", problems),
    )
    page = None if problems else await name_changes.page(filters, raw["cursor"] or None, _page_size(request))
    choices = {"statuses": [s.value for s in ApplicationStatus], "origins": [o.value for o in ApplicationOrigin]}
    return render_listing(
        request,
        "applications.html",
        raw,
        APPLICATION_FIELDS,
        problems,
        page,
        choices,
        page="applications",
        title="Applications",
    )


@get("/applications/{application_id:str}/reapply", guards=OPERATE)
async def confirm_reapply(
    request: Request[Any, Any, Any], application_id: PathId, name_changes: NamedDependency[NameChangeService]
) -> Template:
    application = await name_changes.get(application_id)
    return render(request, "application_reapply.html", {"application": application}, page="applications")


@post("/applications/{application_id:str}/reapply", guards=OPERATE)
async def reapply(
    request: Request[Any, Any, Any], application_id: PathId, name_changes: NamedDependency[NameChangeService]
) -> Redirect:
    actor = (await submitted(request)).actor
    application = await counted(request, "application_reapply", name_changes.reapply(application_id, actor))
    return see_other("/console/applications", customerId=application.customer_id, status="", notice="reapplied")

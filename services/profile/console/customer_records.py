"""A customer's record: the new and edit forms (its versions and rollback are in ``customer_versions``).

The forms write through the same use cases as the API (``POST``/``PATCH /v1/customers``):
the same rules, the same operation-log entry under the signed-in person, who is also the
record's ``createdBy``/``updatedBy``. A refused value comes back on the form, in words, with
what was typed.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from libs.kit.errors import AppError
from services.profile.console.forms import PathId, form_text
from services.profile.console.metrics import counted
from services.profile.console.rendering import render, see_other
from services.profile.console.session import OPERATE, submitted
from services.profile.customers.service import CustomerService, NewCustomer
from services.profile.domain import validation as rules
from services.profile.domain.errors import (
    CustomerAlreadyExists,
    CustomerCodeExists,
    InvalidInput,
    PreconditionFailed,
)
from services.profile.domain.ledger import ProfileChanges
from services.profile.domain.model import DEFAULT_CUSTOMER_TYPE, AccountType, Customer, CustomerStatus

# The form's fields: wire name, label, attribute; in the order shown.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("customerName", "Name", "customer_name"),
    ("customerCode", "Customer code", "customer_code"),
    ("customerType", "Customer type", "customer_type"),
    ("accountType", "Account type", "account_type"),
    ("status", "Status", "status"),
    ("contactPerson", "Contact person", "contact_person"),
    ("contactPhone", "Phone", "contact_phone"),
    ("contactEmail", "E-mail", "contact_email"),
    ("contactAddress", "Address", "contact_address"),
    ("company", "Company", "company"),
    ("industry", "Industry", "industry"),
    ("region", "Region", "region"),
    ("creditLimit", "Credit limit", "credit_limit"),
    ("salesPerson", "Sales person", "sales_person"),
    ("taxNumber", "Tax number", "tax_number"),
    ("remark", "Remark", "remark"),
)
LABELS = {"customerId": "Customer id", "deleted": "In the recycle bin", **{key: label for key, label, _ in FIELDS}}
_OPTIONAL = (
    "contact_person",
    "contact_phone",
    "contact_email",
    "contact_address",
    "company",
    "industry",
    "region",
    "sales_person",
    "tax_number",
    "remark",
)
_CUSTOMER_ID = re.compile(rules.CUSTOMER_ID_PATTERN)
_CREDIT = re.compile(rules.CREDIT_LIMIT_PATTERN)
_MAX_LENGTHS = {
    "customerId": rules.CUSTOMER_ID_MAX,
    "customerName": rules.NAME_MAX,
    "customerCode": rules.CUSTOMER_CODE_MAX,
    "customerType": rules.CUSTOMER_TYPE_MAX,
    "contactPerson": rules.CONTACT_PERSON_MAX,
    "contactPhone": rules.PHONE_MAX,
    "contactEmail": rules.EMAIL_MAX,
    "contactAddress": rules.ADDRESS_MAX,
    "company": rules.COMPANY_MAX,
    "industry": rules.INDUSTRY_MAX,
    "region": rules.REGION_MAX,
    "creditLimit": 16,
    "salesPerson": rules.SALES_PERSON_MAX,
    "taxNumber": rules.TAX_NUMBER_MAX,
    "remark": rules.REMARK_MAX,
    "changeReason": 1000,
}


class FormRefused(InvalidInput):
    """Values of a console form the rules refuse, by wire name."""


def customer_path(customer_id: str) -> str:
    return f"/console/customers/{quote(customer_id, safe='')}"


def _shown(customer: Customer) -> dict[str, str]:
    """A customer's values as the form shows them."""
    values = {key: getattr(customer, attr) for key, _, attr in FIELDS}
    values["accountType"] = customer.account_type.value
    values["status"] = customer.status.value
    values["creditLimit"] = f"{customer.credit_limit:.2f}"
    return {key: "" if value is None else str(value) for key, value in values.items()}


def _typed(form: FormMultiDict) -> dict[str, str]:
    return {key: form_text(form, key) for key in ("customerId", *(k for k, _, _ in FIELDS), "changeReason")}


def _parse(typed: dict[str, str]) -> dict[str, Any]:
    """Form text -> attribute values; the use case applies the record's rules to them."""
    errors: list[dict[str, str]] = []
    for key, longest in _MAX_LENGTHS.items():
        if len(typed.get(key, "")) > longest:
            errors.append({"key": key, "message": f"at most {longest} characters"})
    values: dict[str, Any] = {attr: typed[key] for key, _, attr in FIELDS}
    for attr in _OPTIONAL:
        values[attr] = values[attr] or None
    if typed["accountType"] not in {a.value for a in AccountType}:
        errors.append({"key": "accountType", "message": "choose one of the account types"})
    else:
        values["account_type"] = AccountType(typed["accountType"])
    if typed["status"] and typed["status"] not in {s.value for s in CustomerStatus}:
        errors.append({"key": "status", "message": "choose one of the statuses"})
    statuses = {s.value for s in CustomerStatus}
    values["status"] = CustomerStatus(typed["status"]) if typed["status"] in statuses else None
    credit = typed["creditLimit"] or "0.00"
    if not _CREDIT.match(credit):
        message = "an amount of 0 or more with at most two decimals, e.g. 50000.00"
        errors.append({"key": "creditLimit", "message": message})
        values["credit_limit"] = None
    else:
        values["credit_limit"] = Decimal(credit)
    if errors:
        raise FormRefused("the form has invalid values", errors=errors)
    return values


def _form(
    request: Request[Any, Any, Any],
    *,
    customer_id: str,
    typed: dict[str, str],
    version: int | None,
    problem: AppError | None = None,
) -> Template:
    errors = problem.extensions.get("errors") if problem is not None else None
    messages = (
        [f"{LABELS.get(str(e.get('key')), str(e.get('key')))}: {e.get('message')}" for e in errors]
        if isinstance(errors, list) and errors
        else ([problem.detail] if problem is not None else [])
    )
    context = {
        "customer_id": customer_id,
        "typed": typed,
        "version": version,
        "fields": FIELDS,
        "lengths": _MAX_LENGTHS,
        "account_types": [a.value for a in AccountType],
        "statuses": [s.value for s in CustomerStatus],
        "problems": messages,
        "bad_fields": {str(e.get("key")) for e in errors} if isinstance(errors, list) else set(),
    }
    title = "New customer" if version is None else f"Edit {customer_id}"
    status_code = 200 if problem is None else problem.status
    return render(request, "customer_form.html", context, page="customers", title=title, status_code=status_code)


@get("/customers/new", guards=OPERATE)
async def new_customer_form(request: Request[Any, Any, Any]) -> Template:
    typed = {key: "" for key, _, _ in FIELDS}
    typed.update(customerType=DEFAULT_CUSTOMER_TYPE, accountType=AccountType.RESIDENTIAL.value, creditLimit="0.00")
    return _form(request, customer_id="", typed={"customerId": "", **typed, "changeReason": ""}, version=None)


@post("/customers/new", guards=OPERATE)
async def create_customer(
    request: Request[Any, Any, Any], customers: NamedDependency[CustomerService]
) -> Template | Redirect:
    form, actor = await submitted(request)
    typed = _typed(form)
    customer_id = typed["customerId"]
    try:
        if not customer_id or not _CUSTOMER_ID.match(customer_id) or len(customer_id) > rules.CUSTOMER_ID_MAX:
            raise FormRefused(
                "invalid customer id",
                errors=[{"key": "customerId", "message": "letters, digits, '_', '.', '-' (a letter or digit first)"}],
            )
        values = _parse(typed)
        values.pop("status")
        new = NewCustomer(customer_id=customer_id, **values)
        customer = await counted(request, "customer_create", customers.create(new, actor))
    except (InvalidInput, CustomerAlreadyExists, CustomerCodeExists) as exc:
        return _form(request, customer_id="", typed=typed, version=None, problem=exc)
    return see_other(customer_path(customer.customer_id), notice="created")


@get("/customers/{customer_id:str}/edit", guards=OPERATE)
async def edit_customer_form(
    request: Request[Any, Any, Any], customer_id: PathId, customers: NamedDependency[CustomerService]
) -> Template:
    customer = await customers.get(customer_id)
    typed = {"customerId": customer.customer_id, **_shown(customer), "changeReason": ""}
    return _form(request, customer_id=customer_id, typed=typed, version=customer.version)


@post("/customers/{customer_id:str}/edit", guards=OPERATE)
async def edit_customer(
    request: Request[Any, Any, Any], customer_id: PathId, customers: NamedDependency[CustomerService]
) -> Template | Redirect:
    form, actor = await submitted(request)
    typed = {**_typed(form), "customerId": customer_id}
    raw_version = form_text(form, "version")
    version = int(raw_version) if raw_version.isdigit() else 0
    try:
        values = _parse(typed)
        if values["status"] is None:
            raise FormRefused("invalid status", errors=[{"key": "status", "message": "choose one of the statuses"}])
        changes = ProfileChanges(**values)
        await counted(
            request,
            "customer_edit",
            customers.update(customer_id, changes, version, actor, typed["changeReason"] or None),
        )
    except (InvalidInput, CustomerCodeExists, PreconditionFailed) as exc:
        return _form(request, customer_id=customer_id, typed=typed, version=version, problem=exc)
    return see_other(customer_path(customer_id), notice="updated")


HANDLERS = (new_customer_form, create_customer, edit_customer_form, edit_customer)

"""Customer profiles and the recycle bin (DESIGN.md contract table, seed 004)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from services.profile.access.auth import Role, requires
from services.profile.customers.schemas import (
    CreateCustomerRequest,
    CustomerPage,
    RecycleBinItem,
    RecycleBinPage,
    UpdateCustomerRequest,
)
from services.profile.customers.service import CustomerService, NewCustomer
from services.profile.customers.version_routes import PROFILE_EDIT_PROBLEMS, CustomerVersionRoutes
from services.profile.domain import validation as rules
from services.profile.domain.model import AccountType, CustomerStatus
from services.profile.shared.ports import CustomerFilter
from services.profile.shared.results import Actor
from services.profile.shared.web import examples as ex
from services.profile.shared.web.conditional import (
    IfMatch,
    RequiredIfMatch,
    etag,
    optional_version,
    required_version,
    with_etag,
)
from services.profile.shared.web.params import Cursor, Limit, PathId
from services.profile.shared.web.routes import Ok, Routes, created, page_body, page_ok, route
from services.profile.shared.web.schemas import CustomerResponse, HistoryItem, credit

# The example customer's fields a request sets (the rest are the service's).
_NEW_CUSTOMER = {
    field: ex.CUSTOMER[field]
    for field in (
        *("customerId", "customerName", "accountType", "contactPhone", "contactEmail", "contactAddress"),
        *("customerCode", "company", "industry", "region", "creditLimit", "salesPerson", "taxNumber"),
    )
}


def _filter(name: str, longest: int, what: str) -> Any:
    return QueryParameter(name=name, min_length=1, max_length=longest, description=what)


_CUSTOMER = "/{customer_id:str}"
_READERS = requires(Role.VIEWER, Role.AUDIT_SYSTEM)


class CustomerController(CustomerVersionRoutes, Routes, path="/v1/customers", tag="customers"):
    @route(
        post,
        "/",
        requires(Role.OPERATOR),
        Ok(CustomerResponse, ex.CUSTOMER, "Created", 201),
        "CUSTOMER_EXISTS",
        "CUSTOMER_CODE_EXISTS",
        "VALIDATION",
        "DATABASE_ERROR",
    )
    async def create_customer(
        self,
        data: Annotated[CreateCustomerRequest, ex.body("a residential customer", _NEW_CUSTOMER)],
        customers: NamedDependency[CustomerService],
        actor: NamedDependency[Actor],
    ) -> Response[CustomerResponse]:
        """Create a profile (version 1); 409 when the id or the code exists, also in the recycle bin.

        ``createdBy`` and ``updatedBy`` are the caller's token subject (the body cannot name them).
        """
        # The body's fields are the new customer's; only the credit limit changes type (text -> decimal).
        new = NewCustomer(**{**msgspec.structs.asdict(data), "credit_limit": credit(data.credit_limit)})
        body = CustomerResponse.of(await customers.create(new, actor))
        return created(body, f"{self.path}/{body.customer_id}", {"ETag": etag(body.version)})

    @route(get, "/", _READERS, page_ok(CustomerPage, ex.CUSTOMER, "A page"), "VALIDATION")
    async def list_customers(
        self,
        *,
        customers: NamedDependency[CustomerService],
        status: Annotated[CustomerStatus | None, QueryParameter()] = None,
        account_type: Annotated[AccountType | None, QueryParameter(name="accountType")] = None,
        name_contains: Annotated[str | None, _filter("nameContains", 100, "ignores case")] = None,
        name_prefix: Annotated[str | None, _filter("namePrefix", 100, "exact case")] = None,
        phone: Annotated[
            str | None,
            _filter(
                "contactPhone",
                rules.PHONE_MAX,
                "exact phone, spaces and dashes ignored (matched on a keyed hash, never in plaintext)",
            ),
        ] = None,
        customer_code: Annotated[
            str | None, _filter("customerCode", rules.CUSTOMER_CODE_MAX, "exact customer code")
        ] = None,
        company: Annotated[str | None, _filter("company", rules.COMPANY_MAX, "contains, ignoring case")] = None,
        industry: Annotated[str | None, _filter("industry", rules.INDUSTRY_MAX, "exact industry")] = None,
        region: Annotated[str | None, _filter("region", rules.REGION_MAX, "exact region")] = None,
        sales_person: Annotated[
            str | None, _filter("salesPerson", rules.SALES_PERSON_MAX, "exact sales person")
        ] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> CustomerPage:
        """Live customers (not the recycle bin), oldest first, with a stable cursor."""
        filters = CustomerFilter(
            status,
            account_type,
            name_contains,
            name_prefix,
            phone,
            customer_code=customer_code,
            company_contains=company,
            industry=industry,
            region=region,
            sales_person=sales_person,
        )
        return page_body(CustomerPage, await customers.page(filters, cursor, limit), CustomerResponse.of)

    @route(
        get, _CUSTOMER, _READERS, Ok(CustomerResponse, ex.CUSTOMER, "The profile; ETag = version"), "PROFILE_NOT_FOUND"
    )
    async def get_customer(
        self, customer_id: PathId, customers: NamedDependency[CustomerService]
    ) -> Response[CustomerResponse]:
        return with_etag(CustomerResponse.of(await customers.get(customer_id)))

    @route(
        patch,
        _CUSTOMER,
        requires(Role.OPERATOR),
        Ok(
            CustomerResponse,
            {**ex.CUSTOMER, "customerName": "李四", "version": 4},
            "The edited profile; ETag = new version",
        ),
        *PROFILE_EDIT_PROBLEMS,
    )
    async def update_customer(
        self,
        customer_id: PathId,
        data: Annotated[
            UpdateCustomerRequest,
            ex.body("rename and suspend", {"customerName": "李四", "status": "suspended", "changeReason": "过户"}),
        ],
        customers: NamedDependency[CustomerService],
        actor: NamedDependency[Actor],
        if_match: RequiredIfMatch = None,
    ) -> Response[CustomerResponse]:
        """Edit under optimistic locking: ``If-Match`` is required (428), a stale one is 412.

        A new name is recorded like an approved application: name history, a completed
        application with origin ``profile_edit``, and a ``customer.profile.name-changed.v1``
        event with the new profile version. Contact data is not sent to external systems.
        """
        customer = await customers.update(customer_id, data.changes(), required_version(if_match), actor, data.reason())
        return with_etag(CustomerResponse.of(customer))

    @route(
        delete,
        _CUSTOMER,
        requires(Role.OPERATOR),
        Ok(RecycleBinItem, ex.RECYCLED, "Moved to the recycle bin"),
        "PROFILE_NOT_FOUND",
        "PRECONDITION_FAILED",
    )
    async def delete_customer(
        self,
        customer_id: PathId,
        customers: NamedDependency[CustomerService],
        actor: NamedDependency[Actor],
        recycle_bin_retention: NamedDependency[timedelta],
        if_match: IfMatch = None,
    ) -> RecycleBinItem:
        """Soft delete into the recycle bin (purged after the retention period); ``If-Match`` optional."""
        customer = await customers.delete(customer_id, optional_version(if_match), actor)
        return RecycleBinItem.of_deleted(customer, recycle_bin_retention)

    @route(
        post,
        f"{_CUSTOMER}/restore",
        requires(Role.OPERATOR),
        Ok(CustomerResponse, ex.CUSTOMER, "Back out of the recycle bin"),
        "PROFILE_NOT_FOUND",
        "NOT_IN_RECYCLE_BIN",
    )
    async def restore_customer(
        self, customer_id: PathId, customers: NamedDependency[CustomerService], actor: NamedDependency[Actor]
    ) -> Response[CustomerResponse]:
        return with_etag(CustomerResponse.of(await customers.restore(customer_id, actor)))

    @route(
        get,
        f"{_CUSTOMER}/name-history",
        _READERS,
        Ok(list[HistoryItem], [ex.HISTORY_ITEM], "Newest first"),
        "PROFILE_NOT_FOUND",
    )
    async def name_history(self, customer_id: PathId, customers: NamedDependency[CustomerService]) -> list[HistoryItem]:
        return [HistoryItem.of(entry) for entry in await customers.name_history(customer_id)]


class RecycleBinController(Routes, path="/v1/recycle-bin", tag="customers"):
    @route(get, "/", requires(Role.VIEWER), page_ok(RecycleBinPage, ex.RECYCLED, "A page"), "VALIDATION")
    async def list_recycle_bin(
        self,
        customers: NamedDependency[CustomerService],
        recycle_bin_retention: NamedDependency[timedelta],
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> RecycleBinPage:
        """Deleted customers, most recently deleted first; ``purgeAfter`` is when they go for good."""
        page = await customers.recycle_bin(cursor, limit)
        return page_body(
            RecycleBinPage, page, lambda customer: RecycleBinItem.of_deleted(customer, recycle_bin_retention)
        )

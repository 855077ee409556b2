"""Customer profiles and the recycle bin (DESIGN.md contract table, seed 004)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from services.profile.domain import validation as rules
from services.profile.domain.model import AccountType, CustomerStatus
from services.profile.entrypoints.http import examples as ex
from services.profile.entrypoints.http.auth import Role, requires
from services.profile.entrypoints.http.conditional import IfMatch, etag, optional_version, required_version
from services.profile.entrypoints.http.ledger_schemas import (
    CustomerPage,
    RecycleBinItem,
    RecycleBinPage,
    UpdateCustomerRequest,
)
from services.profile.entrypoints.http.schemas import CreateCustomerRequest, CustomerResponse, HistoryItem
from services.profile.service_layer.customers import CustomerService, NewCustomer
from services.profile.service_layer.pagination import MAX_PAGE_SIZE
from services.profile.service_layer.ports import CustomerFilter
from services.profile.service_layer.results import Actor

PathId = Annotated[str, Parameter(max_length=64)]
Cursor = Annotated[str | None, QueryParameter(max_length=512, description="`nextCursor` of the previous page")]
Limit = Annotated[int | None, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description=f"page size, at most {MAX_PAGE_SIZE}")]
_NEW_CUSTOMER = {
    "customerId": "C2025001",
    "customerName": "张三",
    "accountType": "residential",
    "contactPhone": "+86 138 0013 8000",
    "contactEmail": "zhang.san@example.com",
    "contactAddress": "北京市海淀区中关村大街 1 号",
}


def _with_etag(customer: CustomerResponse, status_code: int = 200) -> Response[CustomerResponse]:
    return Response(customer, status_code=status_code, headers={"ETag": etag(customer.version)})


def _retention(state: State) -> timedelta:
    return timedelta(days=state.settings.ledger.recycle_bin_retention_days)


class CustomerController(Controller):
    path = "/v1/customers"
    tags = ["customers"]  # noqa: RUF012

    @post(
        "/",
        guards=[requires(Role.OPERATOR)],
        status_code=201,
        responses=ex.responses(
            201, CustomerResponse, ex.CUSTOMER, "Created", "CUSTOMER_EXISTS", "VALIDATION", "DATABASE_ERROR"
        ),
    )
    async def create_customer(
        self,
        data: Annotated[CreateCustomerRequest, ex.body("a residential customer", _NEW_CUSTOMER)],
        customers: NamedDependency[CustomerService],
        actor: NamedDependency[Actor],
    ) -> Response[CustomerResponse]:
        """Create a profile (version 1); 409 when the id exists, also in the recycle bin."""
        customer = await customers.create(
            NewCustomer(
                customer_id=data.customer_id,
                customer_name=data.customer_name,
                account_type=data.account_type,
                contact_phone=data.contact_phone,
                contact_email=data.contact_email,
                contact_address=data.contact_address,
            ),
            actor,
        )
        response = _with_etag(CustomerResponse.of(customer), 201)
        response.headers["Location"] = f"/v1/customers/{customer.customer_id}"
        return response

    @get(
        "/",
        guards=[requires(Role.VIEWER, Role.AUDIT_SYSTEM)],
        responses=ex.responses(200, CustomerPage, ex.page_of(ex.CUSTOMER), "A page", "VALIDATION"),
    )
    async def list_customers(
        self,
        *,
        customers: NamedDependency[CustomerService],
        status: Annotated[CustomerStatus | None, QueryParameter()] = None,
        account_type: Annotated[AccountType | None, QueryParameter(name="accountType")] = None,
        name_contains: Annotated[
            str | None, QueryParameter(name="nameContains", min_length=1, max_length=100, description="ignores case")
        ] = None,
        name_prefix: Annotated[
            str | None, QueryParameter(name="namePrefix", min_length=1, max_length=100, description="exact case")
        ] = None,
        phone: Annotated[
            str | None,
            QueryParameter(
                name="contactPhone",
                min_length=1,
                max_length=rules.PHONE_MAX,
                description="exact phone, spaces and dashes ignored (matched on a keyed hash, never in plaintext)",
            ),
        ] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> CustomerPage:
        """Live customers (not the recycle bin), oldest first, with a stable cursor."""
        filters = CustomerFilter(status, account_type, name_contains, name_prefix, phone)
        page = await customers.page(filters, cursor, limit)
        return CustomerPage([CustomerResponse.of(c) for c in page.items], page.next_cursor)

    @get(
        "/{customer_id:str}",
        guards=[requires(Role.VIEWER, Role.AUDIT_SYSTEM)],
        responses=ex.responses(200, CustomerResponse, ex.CUSTOMER, "The profile; ETag = version", "PROFILE_NOT_FOUND"),
    )
    async def get_customer(
        self, customer_id: PathId, customers: NamedDependency[CustomerService]
    ) -> Response[CustomerResponse]:
        return _with_etag(CustomerResponse.of(await customers.get(customer_id)))

    @patch(
        "/{customer_id:str}",
        guards=[requires(Role.OPERATOR)],
        responses=ex.responses(
            200,
            CustomerResponse,
            {**ex.CUSTOMER, "customerName": "李四", "version": 4},
            "The edited profile; ETag = new version",
            "PROFILE_NOT_FOUND",
            "PRECONDITION_FAILED",
            "VALIDATION",
            "PRECONDITION_REQUIRED",
            "DATABASE_ERROR",
        ),
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
        if_match: IfMatch = None,
    ) -> Response[CustomerResponse]:
        """Edit under optimistic locking: ``If-Match`` is required (428), a stale one is 412.

        A new name is recorded like an approved application: name history, a completed
        application with origin ``profile_edit``, and a ``customer.profile.name-changed.v1``
        event with the new profile version. Contact data is not sent to external systems.
        """
        customer = await customers.update(customer_id, data.changes(), required_version(if_match), actor, data.reason())
        return _with_etag(CustomerResponse.of(customer))

    @delete(
        "/{customer_id:str}",
        guards=[requires(Role.OPERATOR)],
        status_code=200,
        responses=ex.responses(
            200, RecycleBinItem, ex.RECYCLED, "Moved to the recycle bin", "PROFILE_NOT_FOUND", "PRECONDITION_FAILED"
        ),
    )
    async def delete_customer(
        self,
        customer_id: PathId,
        customers: NamedDependency[CustomerService],
        actor: NamedDependency[Actor],
        state: State,
        if_match: IfMatch = None,
    ) -> RecycleBinItem:
        """Soft delete into the recycle bin (purged after the retention period); ``If-Match`` optional."""
        customer = await customers.delete(customer_id, optional_version(if_match), actor)
        return RecycleBinItem.of_deleted(customer, _retention(state))

    @post(
        "/{customer_id:str}/restore",
        guards=[requires(Role.OPERATOR)],
        status_code=200,
        responses=ex.responses(
            200, CustomerResponse, ex.CUSTOMER, "Back out of the recycle bin", "PROFILE_NOT_FOUND", "NOT_IN_RECYCLE_BIN"
        ),
    )
    async def restore_customer(
        self, customer_id: PathId, customers: NamedDependency[CustomerService], actor: NamedDependency[Actor]
    ) -> Response[CustomerResponse]:
        return _with_etag(CustomerResponse.of(await customers.restore(customer_id, actor)))

    @get(
        "/{customer_id:str}/name-history",
        guards=[requires(Role.VIEWER, Role.AUDIT_SYSTEM)],
        responses=ex.responses(200, list[HistoryItem], [ex.HISTORY_ITEM], "Newest first", "PROFILE_NOT_FOUND"),
    )
    async def name_history(self, customer_id: PathId, customers: NamedDependency[CustomerService]) -> list[HistoryItem]:
        return [HistoryItem.of(entry) for entry in await customers.name_history(customer_id)]


class RecycleBinController(Controller):
    path = "/v1/recycle-bin"
    tags = ["customers"]  # noqa: RUF012

    @get(
        "/",
        guards=[requires(Role.VIEWER)],
        responses=ex.responses(200, RecycleBinPage, ex.page_of(ex.RECYCLED), "A page", "VALIDATION"),
    )
    async def list_recycle_bin(
        self, customers: NamedDependency[CustomerService], state: State, cursor: Cursor = None, limit: Limit = None
    ) -> RecycleBinPage:
        """Deleted customers, most recently deleted first; ``purgeAfter`` is when they go for good."""
        page = await customers.recycle_bin(cursor, limit)
        retention = _retention(state)
        return RecycleBinPage([RecycleBinItem.of_deleted(c, retention) for c in page.items], page.next_cursor)

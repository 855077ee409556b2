"""The profile service's public HTTP API (DESIGN.md contract table)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from libs.kit.errors import ValidationError
from services.profile.domain.model import NameChangeApplication
from services.profile.entrypoints.http.schemas import (
    ApplicationResponse,
    BatchProfileUpdateRequest,
    CreateCustomerRequest,
    CustomerResponse,
    DecisionRequest,
    HistoryItem,
    ProfileUpdateRequest,
    SubmitApplicationRequest,
)
from services.profile.service_layer.customers import CustomerService, NewCustomer
from services.profile.service_layer.name_changes import NameChangeService
from services.profile.service_layer.results import Actor, BatchItemResult, UpdateResult

PathId = Annotated[str, Parameter(max_length=64)]


def _etag(version: int) -> str:
    return f'"{version}"'


class CustomerController(Controller):
    path = "/v1/customers"
    tags = ["customers"]  # noqa: RUF012

    @post("/", status_code=201)
    async def create_customer(
        self,
        data: JSONBody[CreateCustomerRequest],
        customers: NamedDependency[CustomerService],
        actor: NamedDependency[Actor],
    ) -> Response[CustomerResponse]:
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
        return Response(
            CustomerResponse.of(customer),
            status_code=201,
            headers={"ETag": _etag(customer.version), "Location": f"/v1/customers/{customer.customer_id}"},
        )

    @get("/{customer_id:str}")
    async def get_customer(
        self, customer_id: PathId, customers: NamedDependency[CustomerService]
    ) -> Response[CustomerResponse]:
        customer = await customers.get(customer_id)
        return Response(CustomerResponse.of(customer), headers={"ETag": _etag(customer.version)})

    @get("/{customer_id:str}/name-history")
    async def name_history(self, customer_id: PathId, customers: NamedDependency[CustomerService]) -> list[HistoryItem]:
        return [HistoryItem.of(entry) for entry in await customers.name_history(customer_id)]


class ApplicationController(Controller):
    path = "/v1/name-change-applications"
    tags = ["name-change applications"]  # noqa: RUF012

    @post("/", status_code=201)
    async def submit(
        self,
        data: JSONBody[SubmitApplicationRequest],
        name_changes: NamedDependency[NameChangeService],
        actor: NamedDependency[Actor],
    ) -> Response[ApplicationResponse]:
        application = await name_changes.submit(data.customer_id, data.new_name, data.reason, actor)
        return Response(
            ApplicationResponse.of(application),
            status_code=201,
            headers={"Location": f"{self.path}/{application.application_id}"},
        )

    @get("/{application_id:str}")
    async def get_application(
        self, application_id: PathId, name_changes: NamedDependency[NameChangeService]
    ) -> ApplicationResponse:
        return ApplicationResponse.of(await name_changes.get(application_id))

    @post("/{application_id:str}/decision", status_code=200)
    async def decide(
        self,
        application_id: PathId,
        data: JSONBody[DecisionRequest],
        name_changes: NamedDependency[NameChangeService],
        actor: NamedDependency[Actor],
    ) -> UpdateResult | ApplicationResponse:
        """Approval runs the profile update in the same transaction and returns the UpdateResult."""
        outcome = await name_changes.decide(application_id, data.decision, data.auditor_id, data.comment, actor)
        if isinstance(outcome, NameChangeApplication):
            return ApplicationResponse.of(outcome)
        return outcome


class ProfileUpdateController(Controller):
    path = "/v1/profile-updates"
    tags = ["profile updates"]  # noqa: RUF012

    @post("/", status_code=200)
    async def run_update(
        self,
        data: JSONBody[ProfileUpdateRequest],
        name_changes: NamedDependency[NameChangeService],
        actor: NamedDependency[Actor],
    ) -> UpdateResult:
        return await name_changes.update(data.application_id, actor)

    @post("/batch", status_code=200)
    async def run_batch(
        self,
        data: JSONBody[BatchProfileUpdateRequest],
        name_changes: NamedDependency[NameChangeService],
        actor: NamedDependency[Actor],
        state: State,
    ) -> dict[str, list[BatchItemResult]]:
        limit: int = state.settings.http.max_batch_size
        if len(data.application_ids) > limit:
            raise ValidationError(f"at most {limit} application ids per batch")
        return {"results": await name_changes.update_batch(data.application_ids, actor)}

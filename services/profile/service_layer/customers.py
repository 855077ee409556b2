"""Use cases on customer profiles."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from services.profile.domain.errors import ProfileNotFound
from services.profile.domain.model import AccountType, Customer, CustomerStatus
from services.profile.service_layer.name_changes import Clock, utc_now
from services.profile.service_layer.ports import AuditEntry, HistoryEntry, UnitOfWorkFactory
from services.profile.service_layer.results import Actor

MAX_HISTORY = 500


class NewCustomer(msgspec.Struct, frozen=True):
    customer_id: str
    customer_name: str
    account_type: AccountType
    contact_phone: str | None = None
    contact_email: str | None = None
    contact_address: str | None = None


class CustomerService:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock = utc_now) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def create(self, new: NewCustomer, actor: Actor) -> Customer:
        now = self._clock()
        customer = Customer(
            customer_id=new.customer_id,
            customer_name=new.customer_name,
            contact_phone=new.contact_phone,
            contact_email=new.contact_email,
            contact_address=new.contact_address,
            account_type=new.account_type,
            status=CustomerStatus.ACTIVE,
            version=1,
            created_at=now,
            updated_at=now,
        )
        async with self._uow_factory() as uow:
            await uow.customers.add(customer)
            await uow.audit.add(
                AuditEntry(
                    event_type="CUSTOMER_CREATED",
                    actor_id=actor.actor_id,
                    operation="create customer",
                    customer_id=customer.customer_id,
                    # Only ids and non-personal fields in the log: contact data stays in the profile.
                    new_value={"customerName": customer.customer_name, "accountType": customer.account_type.value},
                    ip_address=actor.ip_address,
                    user_agent=actor.user_agent,
                    trace_id=actor.trace_id,
                ),
                now,
            )
            await uow.commit()
        return customer

    async def get(self, customer_id: str) -> Customer:
        async with self._uow_factory() as uow:
            customer = await uow.customers.get(customer_id)
        if customer is None or customer.is_deleted:
            raise ProfileNotFound(f"customer profile {customer_id} not found")
        return customer

    async def name_history(self, customer_id: str, limit: int = MAX_HISTORY) -> Sequence[HistoryEntry]:
        async with self._uow_factory() as uow:
            if await uow.customers.get(customer_id) is None:
                raise ProfileNotFound(f"customer profile {customer_id} not found")
            return await uow.history.list_for_customer(customer_id, min(limit, MAX_HISTORY))

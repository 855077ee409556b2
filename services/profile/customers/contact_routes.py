"""``GET /internal/v1/customers/{customerId}/contact``: contact data for the notification sender only.

The public topic carries names, never phone numbers or e-mail addresses; the
sync-connector's notification sender reads them here at send time with its
service token (role ``notifier``, which no person holds, not even an admin). It reads
through the customer service, so what it gets is what the repositories return
(decrypted, once contact data is encrypted at rest). A deleted or unknown
customer is 404 ``PROFILE_NOT_FOUND``: the sender records "no contact" and sends nothing.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import Parameter

from services.profile.access.auth import Role, requires
from services.profile.customers.service import CustomerService
from services.profile.shared.web.routes import Ok, Routes, route

_CONTACT_EXAMPLE = {
    "customerId": "C2025001",
    "customerName": "张三",
    "contactPhone": "+86 138 0013 8000",
    "contactEmail": "zhang.san@example.com",
    "preferredLanguage": None,
}


class CustomerContact(msgspec.Struct, frozen=True, rename="camel"):
    customer_id: str
    customer_name: str
    contact_phone: str | None
    contact_email: str | None
    # The profile stores no language yet: null, and the sender uses its default (Chinese).
    preferred_language: str | None = None


class InternalContactController(Routes, path="/internal/v1/customers", tag="internal"):
    @route(
        get,
        "/{customer_id:str}/contact",
        requires(Role.NOTIFIER),
        Ok(CustomerContact, _CONTACT_EXAMPLE, "How to reach the customer"),
        "PROFILE_NOT_FOUND",
        "DATABASE_ERROR",
    )
    async def customer_contact(
        self, customer_id: Annotated[str, Parameter(max_length=64)], customers: NamedDependency[CustomerService]
    ) -> CustomerContact:
        """Phone, e-mail and name of a live customer, for the notification sender (role ``notifier``)."""
        customer = await customers.get(customer_id)
        return CustomerContact(
            customer_id=customer.customer_id,
            customer_name=customer.customer_name,
            contact_phone=customer.contact_phone,
            contact_email=customer.contact_email,
        )

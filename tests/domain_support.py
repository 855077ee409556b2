"""Profile domain objects for the pure-rule unit tests: one clock reading and one customer to vary."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from services.profile.domain.model import AccountType, Customer, CustomerStatus

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
_CUSTOMER = Customer(
    customer_id="C1",
    customer_name="张三",
    contact_phone=None,
    contact_email=None,
    contact_address=None,
    account_type=AccountType.RESIDENTIAL,
    status=CustomerStatus.ACTIVE,
    version=3,
    created_at=NOW,
    updated_at=NOW,
)


def customer(**fields: Any) -> Customer:
    """Customer C1, 张三: active, residential, at version 3, created and last changed at ``NOW``, with no
    contact details; ``fields`` set any field otherwise."""
    return replace(_CUSTOMER, **fields)

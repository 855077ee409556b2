"""Event payloads carried on ``customer-profile.v1`` (JSON, camelCase)."""

from __future__ import annotations

from datetime import datetime

import msgspec

NAME_CHANGED_TYPE = "customer.profile.name-changed.v1"
EVENT_SOURCE = "urn:customer-profile:profile-service"


class CustomerNameChanged(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=False):
    """The full new state after a name change, so the latest event always wins."""

    customer_id: str
    application_id: str
    old_name: str
    new_name: str
    profile_version: int
    reason: str
    changed_at: datetime


def encode_event(event: CustomerNameChanged) -> bytes:
    return msgspec.json.encode(event)


def decode_event(raw: bytes) -> CustomerNameChanged:
    return msgspec.json.decode(raw, type=CustomerNameChanged)

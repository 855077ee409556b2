"""Event payloads carried on ``customer-profile.v1`` (JSON, camelCase).

The published JSON Schema (``contracts/schemas/``) is generated from these types by
``python -m contracts.generate``; a test fails when the two drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

NAME_CHANGED_TYPE = "customer.profile.name-changed.v1"
EVENT_SOURCE = "urn:customer-profile:profile-service"

CustomerId = Annotated[str, msgspec.Meta(description="Customer (account) id.", examples=["C001"])]
ApplicationId = Annotated[str, msgspec.Meta(description="The approved name-change application that caused the event.")]
OldName = Annotated[str, msgspec.Meta(description="Account name (户名) before the change.", examples=["张三"])]
NewName = Annotated[
    str, msgspec.Meta(description="Account name (户名) after the change: the current name.", examples=["李四"])
]
ProfileVersion = Annotated[
    int,
    msgspec.Meta(
        description=(
            "Profile version after the change; strictly increasing per customer. "
            "Apply an event only if it is newer than the version you hold."
        ),
        examples=[2],
    ),
]
ChangedAt = Annotated[
    datetime, msgspec.Meta(tz=True, description="When the change was committed (RFC 3339, with offset).")
]


class CustomerNameChanged(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=False):
    """The full new state after a name change, so the latest event always wins."""

    customer_id: Annotated[CustomerId, msgspec.Meta(description="Customer (account) id; also the Kafka key.")]
    application_id: ApplicationId
    old_name: OldName
    new_name: NewName
    profile_version: ProfileVersion
    reason: Annotated[str, msgspec.Meta(description="Reason given on the application.")]
    changed_at: ChangedAt


def encode_event(event: CustomerNameChanged) -> bytes:
    return msgspec.json.encode(event)


def decode_event(raw: bytes) -> CustomerNameChanged:
    return msgspec.json.decode(raw, type=CustomerNameChanged)

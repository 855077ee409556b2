"""The HTTP contract every external system (CRM, CMS, CSS) implements to receive profile changes.

``contracts/external-systems.md`` explains it for the teams that run those systems; the JSON
Schemas in ``contracts/schemas/`` are generated from the types here.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from contracts.events import ApplicationId, ChangedAt, CustomerId, NewName, OldName, ProfileVersion

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Signature"
# X-Signature: "sha256=" + lowercase hex HMAC-SHA256 of the exact body bytes, keyed by the system's secret.
SIGNATURE_PREFIX = "sha256="
TRACEPARENT_HEADER = "traceparent"

SIGNATURE_PATTERN = "^sha256=[0-9a-f]{64}$"

# POST paths by system code (seed 000).
SYSTEM_PATHS = {
    "CRM": "/api/customer/update",
    "CMS": "/api/profile/sync",
    "CSS": "/api/customer/profile",
}
SYSTEM_NAMES = {"CRM": "billing (计费系统)", "CMS": "marketing (营销系统)", "CSS": "customer service (客服系统)"}


class ExternalSyncRequest(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=False):
    """Body of the POST each external system receives for one name change."""

    event_id: Annotated[
        str,
        msgspec.Meta(
            description="Event id (a UUID); equal to the Idempotency-Key header.",
            examples=["3f1c2a9e-6b1d-4c55-9a53-0c3e4f1a2b7d"],
        ),
    ]
    customer_id: CustomerId
    application_id: ApplicationId
    customer_name: Annotated[NewName, msgspec.Meta(description="The customer's account name after the change.")]
    old_name: OldName
    profile_version: ProfileVersion
    reason: Annotated[str, msgspec.Meta(description="Reason given on the application.")]
    changed_at: ChangedAt


class VersionConflict(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=False):
    """Body of a 409 answer: the profile version the system already holds for that customer."""

    current_version: Annotated[int, msgspec.Meta(description="Profile version the system already applied.")]


def _operation(code: str) -> dict[str, Any]:
    return {
        "operationId": f"{code.lower()}ApplyNameChange",
        "summary": f"{code} {SYSTEM_NAMES[code]}: apply one customer's name change",
        "parameters": [
            {"$ref": "#/components/parameters/IdempotencyKey"},
            {"$ref": "#/components/parameters/Signature"},
            {"$ref": "#/components/parameters/Traceparent"},
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExternalSyncRequest"}}},
        },
        "responses": {
            "2XX": {"description": "Applied (or the same Idempotency-Key was already applied). The body is ignored."},
            "409": {
                "description": (
                    "Not applied because the system already holds this or a newer profile version: "
                    "equal = already applied (success), newer = this event is superseded (never retried)."
                ),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VersionConflict"}}},
            },
            "4XX": {"description": "Permanently rejected (e.g. 400 invalid body, 401 bad signature): not retried."},
            "5XX": {
                "description": (
                    "Temporary failure: retried with exponential backoff and jitter, then dead-lettered. "
                    "Timeouts and refused or dropped connections count the same."
                )
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 description of the endpoint each external system implements."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Customer profile sync: the endpoint CRM, CMS and CSS implement",
            "version": "1.0.0",
            "description": (
                "The sync-connector POSTs every customer name change to each external system, at least "
                "once and in profile-version order per customer. See contracts/external-systems.md."
            ),
        },
        "paths": {path: {"post": _operation(code)} for code, path in SYSTEM_PATHS.items()},
        "components": {
            "parameters": {
                "IdempotencyKey": {
                    "name": IDEMPOTENCY_KEY_HEADER,
                    "in": "header",
                    "required": True,
                    "description": "The event id. A repeated key must not apply the change twice.",
                    "schema": {"type": "string", "format": "uuid"},
                },
                "Signature": {
                    "name": SIGNATURE_HEADER,
                    "in": "header",
                    "required": True,
                    "description": (
                        "sha256= followed by the lowercase hex HMAC-SHA256 of the exact request body bytes, "
                        "keyed with the secret shared with this system. Verify before parsing the body."
                    ),
                    "schema": {"type": "string", "pattern": SIGNATURE_PATTERN},
                },
                "Traceparent": {
                    "name": TRACEPARENT_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "W3C trace context of the call; continue the trace when you can.",
                    "schema": {"type": "string"},
                },
            },
            "schemas": {
                "ExternalSyncRequest": {"$ref": "schemas/external-sync-request.v1.schema.json"},
                "VersionConflict": {"$ref": "schemas/external-version-conflict.v1.schema.json"},
            },
        },
    }

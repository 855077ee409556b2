"""Examples for the OpenAPI document at ``/schema``: request bodies, responses and problems."""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body

from libs.kit.errors import PROBLEM_TYPE_BASE, ProblemDetails

PROBLEM_JSON = "application/problem+json"
TIME = "2026-11-21T08:30:00Z"

CUSTOMER: dict[str, Any] = {
    "customerId": "C2025001",
    "customerName": "张三",
    "accountType": "residential",
    "status": "active",
    "version": 3,
    "createdAt": "2026-01-05T09:00:00Z",
    "updatedAt": TIME,
    "contactPhone": "+86 138 0013 8000",
    "contactEmail": "zhang.san@example.com",
    "contactAddress": "北京市海淀区中关村大街 1 号",
    "customerCode": "CUST-2025-001",
    "customerType": "regular",
    "contactPerson": "张三",
    "company": "北京某某电力设备有限公司",
    "industry": "manufacturing",
    "region": "华北",
    "creditLimit": "50000.00",
    "salesPerson": "王经理",
    "taxNumber": "91110108MA01ABCDE1",
    "remark": "重点客户",
    "createdBy": "operator-7",
    "updatedBy": "operator-7",
}
RECYCLED = {**CUSTOMER, "version": 4, "deletedAt": TIME, "purgeAfter": "2026-12-21T08:30:00Z"}
APPLICATION: dict[str, Any] = {
    "applicationId": "APP-5f0c3b9c8e2a4d6f9a1b2c3d4e5f6a7b",
    "customerId": "C2025001",
    "oldName": "张三",
    "newName": "李四",
    "reason": "过户",
    "status": "pending",
    "profileVersion": 3,
    "origin": "application",
    "createdAt": TIME,
    "updatedAt": TIME,
    "auditorId": None,
    "auditComment": None,
    "decidedAt": None,
    "completedAt": None,
    "failureCode": None,
    "failureDetail": None,
}
UPDATE_RESULT = {
    "success": True,
    "applicationId": APPLICATION["applicationId"],
    "customerId": "C2025001",
    "oldName": "张三",
    "newName": "李四",
    "profileVersion": 4,
    "updateTime": TIME,
    "eventId": "0b8f6f0e-3c1d-4b7e-9a55-1f2e3d4c5b6a",
}
HISTORY_ITEM = {
    "applicationId": APPLICATION["applicationId"],
    "oldName": "张三",
    "newName": "李四",
    "changeReason": "过户",
    "profileVersion": 4,
    "changeDate": TIME,
    "operatorId": "system",
    "operatorName": "Auto System",
}
BACKUP = {
    "backupId": "BK-20261121083000-1a2b3c4d",
    "kind": "manual",
    "label": "before the spring data clean-up",
    "createdBy": "operator-7",
    "createdAt": TIME,
    "customerCount": 100000,
    "deletedCount": 12,
}
RESTORE_REPORT = {
    "backupId": BACKUP["backupId"],
    "customerId": None,
    "dryRun": True,
    "customersChanged": 2,
    "actions": {"update": 1, "undelete": 1},
    "nameChanges": 1,
    "differences": [
        {
            "customerId": "C2025001",
            "action": "update",
            "changedFields": ["customerName", "contactPhone"],
            "currentName": "李四",
            "backupName": "张三",
        },
        {
            "customerId": "C2025002",
            "action": "undelete",
            "changedFields": ["deleted"],
            "currentName": "王五",
            "backupName": "王五",
        },
    ],
    "truncated": False,
    "durationMs": 84.2,
}
AUDIT_ITEM = {
    "id": 1042,
    "eventType": "CUSTOMER_UPDATED",
    "actorId": "operator-7",
    "customerId": "C2025001",
    "applicationId": None,
    "operation": "update customer",
    "oldValue": {"version": 3, "status": "active"},
    "newValue": {"version": 4, "status": "suspended", "changedFields": ["status", "contactPhone"]},
    "ipAddress": "10.0.0.12",
    "userAgent": "curl/8.5.0",
    "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
    "eventTime": TIME,
}
VERSION = {
    **CUSTOMER,
    "version": 2,
    "deletedAt": None,
    "changeKind": "edit",
    "changedFields": ["creditLimit"],
    "redactedFields": [],
}
VERSION_REDACTED = {
    **VERSION,
    "contactPhone": None,
    "contactEmail": None,
    "contactAddress": None,
    "taxNumber": None,
    "redactedFields": ["contactPhone", "contactEmail", "contactAddress", "taxNumber"],
}
DIFFERENCES = [
    {"field": "customerName", "personal": False, "redacted": False, "old": "张三", "new": "李四"},
    {"field": "creditLimit", "personal": False, "redacted": False, "old": "50000.00", "new": "80000.00"},
    {"field": "taxNumber", "personal": True, "redacted": False, "old": "91110108MA01ABCDE1", "new": None},
]
DIFFERENCE = {"customerId": "C2025001", "fromVersion": 2, "toVersion": 5, "differences": DIFFERENCES}
ROLLBACK = {
    "customerId": "C2025001",
    "dryRun": False,
    "fromVersion": 5,
    "toVersion": 2,
    "version": 6,
    "changed": True,
    "differences": [{**d, "old": d["new"], "new": d["old"]} for d in DIFFERENCES],
    "applicationId": APPLICATION["applicationId"],
    "customer": {**CUSTOMER, "version": 6, "updatedBy": "operator-9"},
}
NEXT_CURSOR = "eyJwIjpbIjIwMjYtMTEtMjFUMDg6MzA6MDArMDA6MDAiLCJDMjAyNTAwMSJdLCJmIjoiOWM0ZTJhIn0"

_CONCURRENCY_DETAIL = (
    "profile C2025001 is at version 4, the application was made against version 3: repeating the update "
    "cannot succeed; re-apply the application (or file a new one) against the current version for a new decision"
)
_CODE_EXISTS_DETAIL = "customer code CUST-2025-001 is used by another customer (live or in the recycle bin)"
_UNEXPECTED_DETAIL = (
    "the update of application APP-1 failed unexpectedly and was rolled back; the application is "
    "update_failed and needs an operator: quote the trace id"
)
_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "HTTP_400": (400, "Bad request", "JSON is malformed: invalid character (byte 0)"),
    "UNAUTHENTICATED": (401, "Authentication required", "a bearer token is required"),
    "FORBIDDEN": (403, "Not allowed for this role", "this needs one of the roles: admin"),
    "OUTBOX_ENTRY_NOT_FOUND": (404, "Outbox entry not found", "outbox entry 4f1c... not found"),
    "INVALID_OUTBOX_FILTER": (422, "Invalid outbox filter", "a filter re-drive needs status failed or published"),
    "REDRIVE_LIMIT_EXCEEDED": (422, "Re-drive limit exceeded", "the filter matches 12000 rows, at most 10000"),
    "APPLICATION_NOT_FOUND": (404, "Application not found", "application APP-missing not found"),
    "PROFILE_NOT_FOUND": (404, "Customer profile not found", "customer profile C404 not found"),
    "BACKUP_NOT_FOUND": (404, "Backup not found", "backup BK-missing not found"),
    "VERSION_NOT_FOUND": (404, "Customer version not found", "customer C2025001 has no version 9 kept"),
    "NOT_FOUND": (404, "Not found", "no route for GET /v1/nowhere"),
    "INVALID_STATUS": (409, "Invalid application status", "application APP-1 is rejected, only pending can be decided"),
    "CUSTOMER_EXISTS": (409, "Customer already exists", "customer C2025001 already exists"),
    "NOT_IN_RECYCLE_BIN": (409, "Customer is not in the recycle bin", "customer C2025001 is not in the recycle bin"),
    "RESTORE_IN_PROGRESS": (409, "Another restore is running", "another restore is running"),
    "IDEMPOTENCY_KEY_IN_USE": (409, "Idempotency key in use", "a request with this key is still running"),
    "PRECONDITION_FAILED": (412, "Profile version is stale", "profile C2025001 is at version 4, If-Match names 3"),
    "VALIDATION": (422, "Invalid request", "Validation failed for POST /v1/customers"),
    "IDEMPOTENCY_KEY_REUSED": (422, "Idempotency key reused", "the key was used with another request body"),
    "HTTP_413": (413, "Request body too large", "the request body is larger than 262144 bytes"),
    "PRECONDITION_REQUIRED": (428, "If-Match header required", "send If-Match with the ETag of the profile"),
    "DATABASE_ERROR": (503, "Database unavailable", "database unavailable: ConnectionRefusedError"),
    # Those whose example detail is too long for a line (above).
    "CONCURRENCY_CONFLICT": (409, "Profile modified concurrently", _CONCURRENCY_DETAIL),
    "CUSTOMER_CODE_EXISTS": (409, "Customer code already in use", _CODE_EXISTS_DETAIL),
    "UNEXPECTED_ERROR": (500, "Profile update failed unexpectedly", _UNEXPECTED_DETAIL),
}
_RETRYABLE = {"RESTORE_IN_PROGRESS", "IDEMPOTENCY_KEY_IN_USE", "DATABASE_ERROR"}
# What to do instead of repeating the request (``action``), where a repeat cannot help.
_ACTIONS = {"CONCURRENCY_CONFLICT": "REAPPLY", "UNEXPECTED_ERROR": "MANUAL_INTERVENTION"}


# What any guarded route may answer, whatever it does: a malformed or invalid request, no or
# a wrong token, a lost database.
EVERY_ROUTE = ("HTTP_400", "UNAUTHENTICATED", "FORBIDDEN", "VALIDATION", "DATABASE_ERROR")


def problem_example(code: str) -> dict[str, Any]:
    status, title, detail = _PROBLEMS[code]
    framework = code.startswith("HTTP_")  # the framework's own errors: ``about:blank#http_400``
    example: dict[str, Any] = {
        "type": f"about:blank#{code.lower()}" if framework else PROBLEM_TYPE_BASE + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "retryable": code in _RETRYABLE,
        **({"action": _ACTIONS[code]} if code in _ACTIONS else {}),
        "instance": "/v1/customers/C2025001",
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    if code == "VALIDATION":
        example["errors"] = [{"key": "contactEmail", "message": "not an e-mail address", "source": "body"}]
    return example


def body(summary: str, value: Any) -> Any:
    """``Body(...)`` metadata with one example, for ``Annotated[Struct, body(...)]``."""
    return Body(examples=[Example(summary=summary, value=value)])


def responses(
    status: int, container: Any, example: Any, description: str, *problem_codes: str
) -> dict[int, ResponseSpec]:
    """The success response with its example, and each problem a route can answer with."""
    specs = {
        status: ResponseSpec(container, description=description, examples=[Example(summary=description, value=example)])
    }
    return {**specs, **problems(*problem_codes)}


def problems(*problem_codes: str) -> dict[int, ResponseSpec]:
    """Each problem a route can answer with, plus those of every route (``EVERY_ROUTE``)."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys((*problem_codes, *EVERY_ROUTE)):
        by_status.setdefault(_PROBLEMS[code][0], []).append(code)
    return {
        problem_status: ResponseSpec(
            ProblemDetails,
            description=", ".join(codes),
            media_type=PROBLEM_JSON,
            examples=[Example(summary=code, value=problem_example(code)) for code in codes],
        )
        for problem_status, codes in by_status.items()
    }


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"items": [item], "nextCursor": NEXT_CURSOR}

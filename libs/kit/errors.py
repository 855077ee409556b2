"""Typed application errors and their RFC 9457 problem-details form."""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict, Unpack

import msgspec

PROBLEM_TYPE_BASE = "https://customer-profile.example/problems/"


class ErrorKind(TypedDict, total=False):
    """What a subclass of ``AppError`` declares in its class line; what it leaves out it inherits."""

    code: str
    status: int
    title: str
    retryable: bool
    action: str | None


class AppError(Exception):
    """An error with a stable code, HTTP status, retry hint and, where a retry cannot help, what to do.

    A kind of error is declared in one line, e.g.
    ``class ProfileNotFound(NotFoundError, code="PROFILE_NOT_FOUND", title="Customer profile not found"): ...``
    """

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False
    # What the client should do instead of repeating the request (e.g. ``REAPPLY``); None: nothing to add.
    action: ClassVar[str | None] = None

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    def __init_subclass__(cls, **kind: Unpack[ErrorKind]) -> None:
        super().__init_subclass__()
        for name, value in kind.items():
            setattr(cls, name, value)

    @classmethod
    def problem_type(cls) -> str:
        return PROBLEM_TYPE_BASE + cls.code.lower().replace("_", "-")


class NotFoundError(AppError, code="NOT_FOUND", status=404, title="Not found"): ...


class ConflictError(AppError, code="CONFLICT", status=409, title="Conflict"): ...


class ValidationError(AppError, code="VALIDATION", status=422, title="Invalid request"): ...


class DatabaseError(AppError, code="DATABASE_ERROR", status=503, title="Database unavailable", retryable=True): ...


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    retryable: bool  # always sent, false too: a client must not guess
    action: str | None = None
    instance: str | None = None
    trace_id: str | None = msgspec.field(default=None, name="traceId")
    errors: list[dict[str, Any]] | None = None


def problem_for(error: AppError, instance: str | None, trace_id: str | None) -> ProblemDetails:
    errors = error.extensions.get("errors")
    return ProblemDetails(
        type=error.problem_type(),
        title=error.title,
        status=error.status,
        detail=error.detail,
        code=error.code,
        retryable=error.retryable,
        action=error.action,
        instance=instance,
        trace_id=trace_id,
        errors=errors if isinstance(errors, list) else None,
    )

"""Seed 000 section 6.1 error kinds, each with a stable code and HTTP status."""

from __future__ import annotations

from libs.kit.errors import AppError, ConflictError, NotFoundError, ValidationError


class ApplicationNotFound(NotFoundError, code="APPLICATION_NOT_FOUND", title="Application not found"): ...


class ProfileNotFound(NotFoundError, code="PROFILE_NOT_FOUND", title="Customer profile not found"): ...


class InvalidStatus(ConflictError, code="INVALID_STATUS", title="Invalid application status"): ...


class ConcurrencyConflict(
    ConflictError, code="CONCURRENCY_CONFLICT", title="Profile modified concurrently", retryable=False, action="REAPPLY"
):
    """The application was made against a profile version that is no longer current.

    Repeating the update can never succeed (the application's ``profileVersion`` is fixed): the
    client re-applies (the application takes the current version and needs a new decision) or
    files a new application.
    """


class UnexpectedUpdateError(
    AppError,
    code="UNEXPECTED_ERROR",
    status=500,
    title="Profile update failed unexpectedly",
    action="MANUAL_INTERVENTION",
):
    """Seed 000 6.2's unknown error: anything but the kinds above broke an update (a bug, data this
    release cannot read...). The update was rolled back and the application marked ``update_failed``;
    it needs a person (an admin is told), so a repeat of the request is not the answer."""


class CustomerAlreadyExists(ConflictError, code="CUSTOMER_EXISTS", title="Customer already exists"): ...


class CustomerCodeExists(ConflictError, code="CUSTOMER_CODE_EXISTS", title="Customer code already in use"):
    """``customerCode`` is unique among live and recycled customers (seed 004 重复数据检测)."""


class VersionNotFound(NotFoundError, code="VERSION_NOT_FOUND", title="Customer version not found"):
    """The customer has no such version kept (never reached, or pruned by the retention)."""


class InvalidInput(ValidationError):
    """The request breaks a rule of the profile's (code ``VALIDATION``, 422, like any invalid request)."""


class PreconditionFailed(AppError, code="PRECONDITION_FAILED", status=412, title="Profile version is stale"):
    """The caller's ``If-Match`` names a version that is no longer current (optimistic lock)."""


class PreconditionRequired(AppError, code="PRECONDITION_REQUIRED", status=428, title="If-Match header required"):
    """A conditional request was required (``If-Match``) and not made."""


class NotInRecycleBin(ConflictError, code="NOT_IN_RECYCLE_BIN", title="Customer is not in the recycle bin"): ...


class BackupNotFound(NotFoundError, code="BACKUP_NOT_FOUND", title="Backup not found"): ...


class RestoreInProgress(
    ConflictError, code="RESTORE_IN_PROGRESS", title="Another restore is running", retryable=True
): ...


__all__ = [
    "AppError",
    "ApplicationNotFound",
    "BackupNotFound",
    "ConcurrencyConflict",
    "CustomerAlreadyExists",
    "CustomerCodeExists",
    "InvalidInput",
    "InvalidStatus",
    "NotInRecycleBin",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProfileNotFound",
    "RestoreInProgress",
    "UnexpectedUpdateError",
    "VersionNotFound",
]

"""Seed 000 section 6.1 error kinds, each with a stable code and HTTP status."""

from __future__ import annotations

from libs.kit.errors import AppError, ConflictError, NotFoundError, ValidationError


class ApplicationNotFound(NotFoundError):
    code = "APPLICATION_NOT_FOUND"
    title = "Application not found"


class ProfileNotFound(NotFoundError):
    code = "PROFILE_NOT_FOUND"
    title = "Customer profile not found"


class InvalidStatus(ConflictError):
    code = "INVALID_STATUS"
    title = "Invalid application status"


class ConcurrencyConflict(ConflictError):
    """The application was made against a profile version that is no longer current.

    Repeating the update can never succeed (the application's ``profileVersion`` is fixed): the
    client re-applies (the application takes the current version and needs a new decision) or
    files a new application.
    """

    code = "CONCURRENCY_CONFLICT"
    title = "Profile modified concurrently"
    retryable = False
    action = "REAPPLY"


class UnexpectedUpdateError(AppError):
    """Seed 000 6.2's unknown error: anything but the kinds above broke an update (a bug, data this
    release cannot read...). The update was rolled back and the application marked ``update_failed``;
    it needs a person (an admin is told), so a repeat of the request is not the answer."""

    code = "UNEXPECTED_ERROR"
    status = 500
    title = "Profile update failed unexpectedly"
    action = "MANUAL_INTERVENTION"


class CustomerAlreadyExists(ConflictError):
    code = "CUSTOMER_EXISTS"
    title = "Customer already exists"


class CustomerCodeExists(ConflictError):
    """``customerCode`` is unique among live and recycled customers (seed 004 重复数据检测)."""

    code = "CUSTOMER_CODE_EXISTS"
    title = "Customer code already in use"


class VersionNotFound(NotFoundError):
    """The customer has no such version kept (never reached, or pruned by the retention)."""

    code = "VERSION_NOT_FOUND"
    title = "Customer version not found"


class InvalidInput(ValidationError):
    """The request breaks a rule of the profile's (code ``VALIDATION``, 422, like any invalid request)."""


class PreconditionFailed(AppError):
    """The caller's ``If-Match`` names a version that is no longer current (optimistic lock)."""

    code = "PRECONDITION_FAILED"
    status = 412
    title = "Profile version is stale"


class PreconditionRequired(AppError):
    """A conditional request was required (``If-Match``) and not made."""

    code = "PRECONDITION_REQUIRED"
    status = 428
    title = "If-Match header required"


class NotInRecycleBin(ConflictError):
    code = "NOT_IN_RECYCLE_BIN"
    title = "Customer is not in the recycle bin"


class BackupNotFound(NotFoundError):
    code = "BACKUP_NOT_FOUND"
    title = "Backup not found"


class RestoreInProgress(ConflictError):
    code = "RESTORE_IN_PROGRESS"
    title = "Another restore is running"
    retryable = True


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

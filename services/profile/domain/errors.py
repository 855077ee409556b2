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
    code = "CONCURRENCY_CONFLICT"
    title = "Profile modified concurrently"
    retryable = True


class CustomerAlreadyExists(ConflictError):
    code = "CUSTOMER_EXISTS"
    title = "Customer already exists"


class InvalidInput(ValidationError):
    code = "VALIDATION"
    title = "Invalid request"


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
    "InvalidInput",
    "InvalidStatus",
    "NotInRecycleBin",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProfileNotFound",
    "RestoreInProgress",
]

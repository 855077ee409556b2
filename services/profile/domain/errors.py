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


__all__ = [
    "AppError",
    "ApplicationNotFound",
    "ConcurrencyConflict",
    "CustomerAlreadyExists",
    "InvalidInput",
    "InvalidStatus",
    "ProfileNotFound",
]

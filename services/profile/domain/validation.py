"""Field rules of a customer profile (seed 004 "数据完整性检查"), shared by every entry point.

The HTTP schemas use the same patterns, so a request is refused before it reaches a use
case; these checks keep other entry points (CLI, restore) and future callers honest.
Error keys are the wire (camelCase) names, so a 422 points at the field the caller sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from services.profile.domain.errors import InvalidInput

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NAME_PATTERN = r"\S"
PHONE_PATTERN = r"^\+?[0-9][0-9 -]{4,18}[0-9]$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

CUSTOMER_ID_MAX = 50
NAME_MAX = 100
PHONE_MAX = 20
EMAIL_MAX = 254
ADDRESS_MAX = 500

_PHONE = re.compile(PHONE_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)


def field_error(key: str, message: str) -> dict[str, Any]:
    """One entry of a 422's ``errors`` list, in the shape the framework uses for schema errors."""
    return {"key": key, "message": message, "source": "body"}


def name_errors(name: str, key: str = "customerName") -> list[dict[str, Any]]:
    if not name.strip():
        return [field_error(key, "must not be blank")]
    if len(name) > NAME_MAX:
        return [field_error(key, f"at most {NAME_MAX} characters")]
    return []


def contact_errors(phone: str | None, email: str | None, address: str | None) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if phone is not None and (len(phone) > PHONE_MAX or not _PHONE.match(phone)):
        errors.append(field_error("contactPhone", "not a phone number (digits, spaces, '-', optional leading '+')"))
    if email is not None and (len(email) > EMAIL_MAX or not _EMAIL.match(email)):
        errors.append(field_error("contactEmail", "not an e-mail address"))
    if address is not None and len(address) > ADDRESS_MAX:
        errors.append(field_error("contactAddress", f"at most {ADDRESS_MAX} characters"))
    return errors


def raise_if_any(errors: Iterable[dict[str, Any]], what: str = "invalid customer profile") -> None:
    collected = list(errors)
    if collected:
        raise InvalidInput(what, errors=collected)

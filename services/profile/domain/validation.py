"""Field rules of a customer profile (seed 004 "数据完整性检查"), shared by every entry point.

The HTTP schemas use the same patterns, so a request is refused before it reaches a use
case; these checks keep other entry points (CLI, restore) and future callers honest.
Error keys are the wire (camelCase) names, so a 422 points at the field the caller sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.profile.domain.errors import InvalidInput

if TYPE_CHECKING:
    from services.profile.domain.model import Customer

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# White space as Python's re and the document's ECMA-262 patterns both read it (each counts some the other
# does not), and NUL, which no text column can hold.
_SPACE = r"\s\x1c-\x1f\x85\ufeff\x00"
NAME_PATTERN = rf"^[^\x00]*[^{_SPACE}][^\x00]*$"  # not blank, no NUL
PHONE_PATTERN = r"^\+?[0-9][0-9 -]{4,18}[0-9]$"
EMAIL_PATTERN = rf"^[^@{_SPACE}]+@[^@{_SPACE}]+\.[^@{_SPACE}]+$"
CUSTOMER_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
CUSTOMER_TYPE_PATTERN = r"^[a-z][a-z0-9_-]*$"
TEXT_PATTERN = NAME_PATTERN  # free text: anything but blank
TAX_NUMBER_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 -]*[A-Za-z0-9])?$"
# A decimal(15,2) sent as a string: never negative, at most two places, never a float.
CREDIT_LIMIT_PATTERN = r"^(?:0|[1-9][0-9]{0,12})(?:\.[0-9]{1,2})?$"

CUSTOMER_ID_MAX = 50
NAME_MAX = 100
PHONE_MAX = 20
EMAIL_MAX = 254
ADDRESS_MAX = 500
CUSTOMER_CODE_MAX = 100
CUSTOMER_TYPE_MAX = 50
CONTACT_PERSON_MAX = 100
COMPANY_MAX = 200
INDUSTRY_MAX = 100
REGION_MAX = 100
SALES_PERSON_MAX = 100
TAX_NUMBER_MAX = 100
REMARK_MAX = 2000
CREDIT_LIMIT_MAX = Decimal("9999999999999.99")

_PHONE = re.compile(PHONE_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)
_CODE = re.compile(CUSTOMER_CODE_PATTERN)
_TYPE = re.compile(CUSTOMER_TYPE_PATTERN)
_TAX_NUMBER = re.compile(TAX_NUMBER_PATTERN)
# Optional free-text fields: attribute, wire name, longest length.
_TEXTS = (
    ("contact_person", "contactPerson", CONTACT_PERSON_MAX),
    ("company", "company", COMPANY_MAX),
    ("industry", "industry", INDUSTRY_MAX),
    ("region", "region", REGION_MAX),
    ("sales_person", "salesPerson", SALES_PERSON_MAX),
    ("remark", "remark", REMARK_MAX),
)


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


def record_errors(customer: Customer) -> list[dict[str, Any]]:
    """Seed 004's fields beyond the name and contact data (the tax number's value is never echoed)."""
    errors: list[dict[str, Any]] = []
    code = customer.customer_code
    if len(code) > CUSTOMER_CODE_MAX or not _CODE.match(code):
        errors.append(field_error("customerCode", f"letters, digits, '_', '.', '-', at most {CUSTOMER_CODE_MAX}"))
    kind = customer.customer_type
    if len(kind) > CUSTOMER_TYPE_MAX or not _TYPE.match(kind):
        errors.append(field_error("customerType", f"lower-case letters, digits, '_', '-', at most {CUSTOMER_TYPE_MAX}"))
    for attr, key, longest in _TEXTS:
        value = getattr(customer, attr)
        if value is not None and (not value.strip() or len(value) > longest):
            errors.append(field_error(key, f"not blank, at most {longest} characters"))
    errors.extend(credit_limit_errors(customer.credit_limit))
    tax = customer.tax_number
    if tax is not None and (len(tax) > TAX_NUMBER_MAX or not _TAX_NUMBER.match(tax)):
        errors.append(field_error("taxNumber", f"letters, digits, spaces, '-', at most {TAX_NUMBER_MAX}"))
    return errors


def credit_limit_errors(value: Decimal) -> list[dict[str, Any]]:
    if not value.is_finite() or value < 0 or value > CREDIT_LIMIT_MAX:
        return [field_error("creditLimit", f"between 0 and {CREDIT_LIMIT_MAX}")]
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:  # noqa: PLR2004 - two decimal places
        return [field_error("creditLimit", "at most two decimal places")]
    return []


def raise_if_any(errors: Iterable[dict[str, Any]], what: str = "invalid customer profile") -> None:
    collected = list(errors)
    if collected:
        raise InvalidInput(what, errors=collected)

"""How a customer's personal data (contact phone, e-mail, address; tax number) is stored: sealed, never in plaintext.

Each value is sealed with AES-256-GCM (``libs.kit.crypto``) under associated data that names
the customer and the column (``customer/<id>/contact_phone``), not the table, so a backup copy
of a row opens like the row itself but a value moved to another customer or column does not.
Next to the sealed values a row keeps:

- ``contact_key_id``: the key that sealed them (a rotation picks rows whose key is not the active one);
- ``contact_phone_hash``: HMAC-SHA256 of the normalized phone, so a phone search is an equality
  lookup on an index without the phone ever being stored or compared in plaintext;
- ``contact_digest``: HMAC-SHA256 of all personal values, so "did the personal data change" (restore
  comparing a backup with the live row) is a column comparison, though every seal differs. The tax
  number joins the digest only when there is one, so rows without one kept their digest when it
  was added (migration profile_0005).

The tax number is sealed the same way (``customer/<id>/tax_number``) in ``tax_number_encrypted``,
under the row's ``contact_key_id``: ``seal_personal``/``open_personal`` handle all four values;
``seal``/``open`` only the contact data (what migration profile_0004 knew).

Stored Idempotency-Key responses are sealed the same way (``idempotency/<scope>/<key>``):
a created customer's response carries its contact data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import RowMapping

from libs.kit.crypto import CryptoSettings, FieldCipher, KeyedHasher

CONTACT_FIELDS = ("contact_phone", "contact_email", "contact_address")
ENCRYPTED = {name: f"{name}_encrypted" for name in CONTACT_FIELDS}
KEY_ID_COLUMN = "contact_key_id"
PHONE_HASH_COLUMN = "contact_phone_hash"
DIGEST_COLUMN = "contact_digest"
STORED_COLUMNS = (*ENCRYPTED.values(), KEY_ID_COLUMN, PHONE_HASH_COLUMN, DIGEST_COLUMN)
TAX_NUMBER = "tax_number"
TAX_NUMBER_COLUMN = "tax_number_encrypted"
PERSONAL_FIELDS = (*CONTACT_FIELDS, TAX_NUMBER)
# Every column a row's personal data is stored in (what a key rotation re-seals).
SEALED_COLUMNS = (*STORED_COLUMNS, TAX_NUMBER_COLUMN)
_NOT_PHONE_DIGITS = re.compile(r"[^0-9+]")


def normalized_phone(phone: str) -> str:
    """``+86 138-0013 8000`` and ``+8613800138000`` are one phone for a search."""
    return _NOT_PHONE_DIGITS.sub("", phone)


def _aad(customer_id: str, field: str) -> bytes:
    return f"customer/{customer_id}/{field}".encode()


class ContactProtector:
    def __init__(self, cipher: FieldCipher, hasher: KeyedHasher) -> None:
        self._cipher = cipher
        self._hasher = hasher

    @classmethod
    def from_settings(cls, settings: CryptoSettings) -> ContactProtector:
        return cls(FieldCipher.from_settings(settings), KeyedHasher.from_settings(settings))

    @property
    def active_key_id(self) -> str:
        return self._cipher.active_key_id

    def seal(self, customer_id: str, contact: Mapping[str, str | None]) -> dict[str, Any]:
        """The stored columns of ``contact`` (plaintext by field name) for one customer."""
        values: dict[str, Any] = {
            ENCRYPTED[field]: None if contact[field] is None else self._seal_text(contact[field], customer_id, field)
            for field in CONTACT_FIELDS
        }
        phone = contact["contact_phone"]
        values[KEY_ID_COLUMN] = self._cipher.active_key_id
        values[PHONE_HASH_COLUMN] = None if phone is None else self.phone_hash(phone)
        values[DIGEST_COLUMN] = self._digest(contact, None)
        return values

    def seal_personal(self, customer_id: str, personal: Mapping[str, str | None]) -> dict[str, Any]:
        """The sealed columns of all personal data (contact data and tax number) of one customer."""
        tax_number = personal[TAX_NUMBER]
        values = self.seal(customer_id, personal)
        values[TAX_NUMBER_COLUMN] = None if tax_number is None else self._seal_text(tax_number, customer_id, TAX_NUMBER)
        values[DIGEST_COLUMN] = self._digest(personal, tax_number)
        return values

    def open_personal(self, row: RowMapping | Mapping[str, Any]) -> dict[str, str | None]:
        """Plaintext personal data, by field name, of a stored row (live profile, backup copy or version)."""
        sealed = row[TAX_NUMBER_COLUMN]
        tax_number = None if sealed is None else self._cipher.open(bytes(sealed), _aad(row["customer_id"], TAX_NUMBER))
        return {**self.open(row), TAX_NUMBER: None if tax_number is None else tax_number.decode()}

    def _digest(self, contact: Mapping[str, str | None], tax_number: str | None) -> bytes:
        parts = [b"\x00" if contact[f] is None else b"\x01" + str(contact[f]).encode() for f in CONTACT_FIELDS]
        if tax_number is not None:  # absent: the digest of contact data alone, as before the tax number
            parts.append(b"\x01" + tax_number.encode())
        return self._hasher.digest(b"contact", *parts)

    def open(self, row: RowMapping | Mapping[str, Any]) -> dict[str, str | None]:
        """Plaintext contact data, by field name, of a stored row (live profile or backup copy)."""
        customer_id: str = row["customer_id"]
        return {
            field: None
            if row[ENCRYPTED[field]] is None
            else self._cipher.open(bytes(row[ENCRYPTED[field]]), _aad(customer_id, field)).decode()
            for field in CONTACT_FIELDS
        }

    def phone_hash(self, phone: str) -> bytes:
        return self._hasher.digest(b"phone", normalized_phone(phone).encode())

    def seal_response(self, scope: str, key: str, body: bytes) -> tuple[bytes, str]:
        return self._cipher.seal(body, _response_aad(scope, key)), self._cipher.active_key_id

    def open_response(self, scope: str, key: str, sealed: bytes) -> bytes:
        return self._cipher.open(sealed, _response_aad(scope, key))

    def _seal_text(self, text: str | None, customer_id: str, field: str) -> bytes:
        return self._cipher.seal(str(text).encode(), _aad(customer_id, field))


def _response_aad(scope: str, key: str) -> bytes:
    return f"idempotency/{len(scope)}:{scope}/{key}".encode()

"""Contact sealing, version 1, exactly as migration profile_0004 applied it. FROZEN: never edit this file.

A migration must do the same thing every time it runs, so it never imports the service's code, which
changes (``services.profile.adapters.contact_crypto``, ``libs.kit.crypto``). This is a copy of the
scheme those modules implemented when profile_0004 was written:

- AES-256-GCM; a sealed value is ``0x01 | len(kid) | kid | nonce (12 bytes) | ciphertext+tag``;
- associated data ``customer/<customer id>/<column>`` for contact values and
  ``idempotency/<len(scope)>:<scope>/<key>`` for stored responses;
- HMAC-SHA256 over length-prefixed parts: the phone hash (``phone``, the phone without anything but
  digits and ``+``) and the contact digest (``contact``, then per field ``0x00`` for none or ``0x01``
  and the value).

A later migration that seals differently gets a module of its own (``sealing_v2``); this one stays.
Settings come duck-typed (``keys``, ``active_key_id``, ``hash_key``), so no settings class is imported.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONTACT_FIELDS = ("contact_phone", "contact_email", "contact_address")
ENCRYPTED = {name: f"{name}_encrypted" for name in CONTACT_FIELDS}
KEY_ID_COLUMN = "contact_key_id"
PHONE_HASH_COLUMN = "contact_phone_hash"
DIGEST_COLUMN = "contact_digest"
STORED_COLUMNS = (*ENCRYPTED.values(), KEY_ID_COLUMN, PHONE_HASH_COLUMN, DIGEST_COLUMN)

_FORMAT_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_BYTES = 32
_MAX_KEY_ID_LENGTH = 32
_NOT_PHONE_DIGITS = re.compile(r"[^0-9+]")


class SealingError(ValueError):
    """Keys missing or malformed, or a value that does not open: the migration stops."""


def _decode_key(encoded: str, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError as exc:
        raise SealingError(f"{what} is not base64url") from exc
    if len(raw) != _KEY_BYTES:
        raise SealingError(f"{what} must be {_KEY_BYTES} bytes, got {len(raw)}")
    return raw


def _contact_aad(customer_id: str, field: str) -> bytes:
    return f"customer/{customer_id}/{field}".encode()


def _response_aad(scope: str, key: str) -> bytes:
    return f"idempotency/{len(scope)}:{scope}/{key}".encode()


class ContactSealer:
    def __init__(self, keys: Mapping[str, bytes], active_key_id: str, hash_key: bytes) -> None:
        if active_key_id not in keys:
            raise SealingError(f"the active key id {active_key_id!r} is not among the configured keys")
        for kid in keys:
            if not kid or len(kid) > _MAX_KEY_ID_LENGTH or not kid.isascii():
                raise SealingError(f"key ids are 1 to {_MAX_KEY_ID_LENGTH} ASCII characters")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active_key_id = active_key_id
        self._active_prefix = bytes([_FORMAT_VERSION, len(active_key_id)]) + active_key_id.encode()
        self._hash_key = hash_key

    @classmethod
    def from_settings(cls, settings: Any) -> ContactSealer:
        keys: Mapping[str, str] = settings.keys
        if not keys or not settings.active_key_id:
            raise SealingError("encryption at rest needs CRYPTO_KEYS and CRYPTO_ACTIVE_KEY_ID")
        if not settings.hash_key:
            raise SealingError("keyed hashes need CRYPTO_HASH_KEY")
        decoded = {kid: _decode_key(encoded, f"key {kid!r}") for kid, encoded in keys.items()}
        return cls(decoded, settings.active_key_id, _decode_key(settings.hash_key, "the hash key"))

    def seal(self, customer_id: str, contact: Mapping[str, str | None]) -> dict[str, Any]:
        """The stored columns of ``contact`` (plaintext by field name) for one customer."""
        values: dict[str, Any] = {
            ENCRYPTED[field]: None
            if contact[field] is None
            else self._seal(str(contact[field]).encode(), _contact_aad(customer_id, field))
            for field in CONTACT_FIELDS
        }
        phone = contact["contact_phone"]
        values[KEY_ID_COLUMN] = self._active_key_id
        values[PHONE_HASH_COLUMN] = None if phone is None else self._digest(b"phone", _normalized(phone).encode())
        values[DIGEST_COLUMN] = self._digest(
            b"contact", *(b"\x00" if contact[f] is None else b"\x01" + str(contact[f]).encode() for f in CONTACT_FIELDS)
        )
        return values

    def open(self, row: Mapping[str, Any]) -> dict[str, str | None]:
        """Plaintext contact data, by field name, of a stored row."""
        customer_id: str = row["customer_id"]
        return {
            field: None
            if row[ENCRYPTED[field]] is None
            else self._open(bytes(row[ENCRYPTED[field]]), _contact_aad(customer_id, field)).decode()
            for field in CONTACT_FIELDS
        }

    def seal_response(self, scope: str, key: str, body: bytes) -> tuple[bytes, str]:
        return self._seal(body, _response_aad(scope, key)), self._active_key_id

    def open_response(self, scope: str, key: str, sealed: bytes) -> bytes:
        return self._open(sealed, _response_aad(scope, key))

    def _seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return self._active_prefix + nonce + self._keys[self._active_key_id].encrypt(nonce, plaintext, associated_data)

    def _open(self, value: bytes, associated_data: bytes) -> bytes:
        if len(value) < 2 or value[0] != _FORMAT_VERSION:  # noqa: PLR2004 - version and length bytes
            raise SealingError("not a sealed value of a known format")
        end = 2 + value[1]
        if len(value) < end + _NONCE_BYTES + _TAG_BYTES:
            raise SealingError("sealed value truncated")
        kid, body = value[2:end].decode("ascii", "replace"), value[end:]
        aead = self._keys.get(kid)
        if aead is None:
            raise SealingError(f"sealed with key {kid!r}, which is not configured")
        try:
            return aead.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise SealingError(f"a value sealed with key {kid!r} failed authentication") from None

    def _digest(self, *parts: bytes) -> bytes:
        mac = hmac.new(self._hash_key, digestmod=hashlib.sha256)
        for part in parts:  # length-prefixed, so ("ab", "c") and ("a", "bc") differ
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        return mac.digest()


def _normalized(phone: str) -> str:
    return _NOT_PHONE_DIGITS.sub("", phone)

"""Field encryption at rest (AES-256-GCM) and keyed hashes (HMAC-SHA256) for searching.

A sealed value is self-describing: ``0x01 | len(kid) | kid | nonce (12 bytes) | ciphertext+tag``.
Every value gets a fresh random 96-bit nonce; the caller's associated data (e.g. customer id
and column) is authenticated but not stored, so a value copied to another row or column no
longer opens. The key id travels with the value: several keys can be configured at once,
values are always sealed with the active one, and a rotation re-seals old values in place.

Keys are base64url of 32 random bytes, from settings (``<PREFIX>CRYPTO_KEYS`` as a JSON
object ``{"<kid>": "<key>"}``, ``<PREFIX>CRYPTO_ACTIVE_KEY_ID``, ``<PREFIX>CRYPTO_HASH_KEY``).
"""

from __future__ import annotations

import hashlib
import hmac
import os

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from libs.kit import b64url
from libs.kit.errors import AppError

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
MAX_KEY_ID_LENGTH = 32


class CryptoSettings(msgspec.Struct, frozen=True):
    # The AES-256 keys that open contact data at rest ({"<key id>": "<base64url key>"}; keep old ones until a
    # rotation is done), and the one new values are sealed with.
    keys: dict[str, str] = msgspec.field(default_factory=dict)
    active_key_id: str = ""
    # HMAC key of the searchable phone hash and the change digest; not an encryption key.
    hash_key: str = ""
    # Rows re-sealed per transaction by the key rotation.
    rotate_batch_size: int = 500

    def __repr__(self) -> str:  # never print key material
        return f"CryptoSettings(kids={sorted(self.keys)}, active_key_id={self.active_key_id!r})"


class CryptoConfigError(ValueError):
    """Keys missing or malformed in the settings: the process must not start."""


class UnreadableValue(AppError, code="ENCRYPTED_DATA_UNREADABLE", status=500, title="Stored data cannot be decrypted"):
    """A sealed value does not open: unknown key id, wrong associated data, or tampered bytes."""


def decode_key(encoded: str, what: str) -> bytes:
    try:
        raw = b64url.decode(encoded)
    except ValueError as exc:
        raise CryptoConfigError(f"{what} is not base64url") from exc
    if len(raw) != KEY_BYTES:
        raise CryptoConfigError(f"{what} must be {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def generate_key() -> str:
    return b64url.encode(os.urandom(KEY_BYTES))


class FieldCipher:
    """AES-256-GCM with a key ring: seal with the active key, open with whichever key sealed it."""

    def __init__(self, keys: dict[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise CryptoConfigError(f"the active key id {active_key_id!r} is not among the configured keys")
        for kid in keys:
            if not kid or len(kid) > MAX_KEY_ID_LENGTH or not kid.isascii():
                raise CryptoConfigError(f"key ids are 1 to {MAX_KEY_ID_LENGTH} ASCII characters")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active_key_id = active_key_id
        self._active_prefix = bytes([FORMAT_VERSION, len(active_key_id)]) + active_key_id.encode()

    @classmethod
    def from_settings(cls, settings: CryptoSettings) -> FieldCipher:
        if not settings.keys or not settings.active_key_id:
            raise CryptoConfigError("encryption at rest needs CRYPTO_KEYS and CRYPTO_ACTIVE_KEY_ID")
        keys = {kid: decode_key(encoded, f"key {kid!r}") for kid, encoded in settings.keys.items()}
        return cls(keys, settings.active_key_id)

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.active_key_id].encrypt(nonce, plaintext, associated_data)
        return self._active_prefix + nonce + sealed

    def open(self, value: bytes, associated_data: bytes) -> bytes:
        kid, body = _split(value)
        aead = self._keys.get(kid)
        if aead is None:
            raise UnreadableValue(f"sealed with key {kid!r}, which is not configured")
        try:
            return aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise UnreadableValue(f"a value sealed with key {kid!r} failed authentication") from None

    @staticmethod
    def key_id(value: bytes) -> str:
        return _split(value)[0]


def _split(value: bytes) -> tuple[str, bytes]:
    if len(value) < 2 or value[0] != FORMAT_VERSION:  # noqa: PLR2004 - version and length bytes
        raise UnreadableValue("not a sealed value of a known format")
    end = 2 + value[1]
    if len(value) < end + NONCE_BYTES + 16:
        raise UnreadableValue("sealed value truncated")
    return value[2:end].decode("ascii", "replace"), value[end:]


class KeyedHasher:
    """HMAC-SHA256: equal inputs give equal digests, and without the key nobody can test a guess."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_settings(cls, settings: CryptoSettings) -> KeyedHasher:
        if not settings.hash_key:
            raise CryptoConfigError("keyed hashes need CRYPTO_HASH_KEY")
        return cls(decode_key(settings.hash_key, "the hash key"))

    def digest(self, *parts: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in parts:  # length-prefixed, so ("ab", "c") and ("a", "bc") differ
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        return mac.digest()

"""Keys for tests: one token signing key pair and one set of encryption keys per test run.

``auth_env()`` is the security environment every profile app or process needs: the token
keys (``PROFILE_AUTH_*``, to verify and, for the token CLI, issue tokens) and the keys that
seal contact data at rest (``PROFILE_CRYPTO_*``); ``connector_auth_env()`` the connector's.
``contact_protector()`` seals and opens contact data with the same keys (seeding, checks). ``bearer(...)`` is an
``Authorization`` header for the given roles and subject. ``authorize(client)`` gives a test
client a token that may call every route except the notifier's (admin + audit-system), so
tests written before authentication keep exercising behaviour, not permissions.
"""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from typing import TypeVar

from libs.kit.crypto import CryptoSettings, generate_key
from libs.kit.tokens import Role, TokenIssuer, TokenSettings, generate_key_pair
from services.profile.shared.storage.contact_crypto import ContactProtector

ClientT = TypeVar("ClientT")
TEST_KEY_ID = "test-key-1"
TEST_CRYPTO_KEY_ID = "test-aes-1"
EVERYTHING = (Role.ADMIN, Role.AUDIT_SYSTEM)
DEFAULT_SUBJECT = "test-admin"


@functools.cache
def _key_pair() -> tuple[str, str]:
    return generate_key_pair()


@functools.cache
def crypto_settings() -> CryptoSettings:
    return CryptoSettings(
        keys={TEST_CRYPTO_KEY_ID: generate_key()}, active_key_id=TEST_CRYPTO_KEY_ID, hash_key=generate_key()
    )


def crypto_env(settings: CryptoSettings | None = None) -> dict[str, str]:
    crypto = settings or crypto_settings()
    return {
        "PROFILE_CRYPTO_KEYS": json.dumps(crypto.keys),
        "PROFILE_CRYPTO_ACTIVE_KEY_ID": crypto.active_key_id,
        "PROFILE_CRYPTO_HASH_KEY": crypto.hash_key,
    }


def contact_protector(settings: CryptoSettings | None = None) -> ContactProtector:
    return ContactProtector.from_settings(settings or crypto_settings())


def token_settings() -> TokenSettings:
    private, public = _key_pair()
    return TokenSettings(public_keys={TEST_KEY_ID: public}, signing_key_id=TEST_KEY_ID, signing_key=private)


def auth_env(prefix: str = "PROFILE_") -> dict[str, str]:
    private, public = _key_pair()
    return {
        f"{prefix}AUTH_PUBLIC_KEYS": json.dumps({TEST_KEY_ID: public}),
        f"{prefix}AUTH_SIGNING_KEY_ID": TEST_KEY_ID,
        f"{prefix}AUTH_SIGNING_KEY": private,
        **(crypto_env() if prefix == "PROFILE_" else {}),
    }


def connector_token_settings() -> TokenSettings:
    """What the connector gets: the public key only."""
    _, public = _key_pair()
    return TokenSettings(public_keys={TEST_KEY_ID: public})


def connector_auth_env() -> dict[str, str]:
    """Verification only: the connector never holds the private key."""
    _, public = _key_pair()
    return {"CONNECTOR_AUTH_PUBLIC_KEYS": json.dumps({TEST_KEY_ID: public})}


def token(*roles: Role, subject: str = DEFAULT_SUBJECT, ttl: timedelta = timedelta(hours=1)) -> str:
    return TokenIssuer(token_settings()).issue(subject, frozenset(roles or EVERYTHING), ttl)


def bearer(*roles: Role, subject: str = DEFAULT_SUBJECT) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, subject=subject)}"}


def authorize(client: ClientT, *roles: Role, subject: str = DEFAULT_SUBJECT) -> ClientT:
    """Every later request of this (httpx or aiohttp-like) client carries the token; returns the client."""
    client.headers.update(bearer(*roles, subject=subject))  # type: ignore[attr-defined]
    return client

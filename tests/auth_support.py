"""Bearer tokens for tests: one signing key pair per test run, handed to apps and processes as settings.

``auth_env()`` is the environment a profile app or process needs to verify (and, for the token
CLI, issue) tokens; ``connector_auth_env()`` the connector's. ``bearer(...)`` is an
``Authorization`` header for the given roles and subject. ``authorize(client)`` gives a test
client a token that may call every route except the notifier's (admin + audit-system), so
tests written before authentication keep exercising behaviour, not permissions.
"""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from typing import Any

from libs.kit.tokens import Role, TokenIssuer, TokenSettings, generate_key_pair

TEST_KEY_ID = "test-key-1"
EVERYTHING = (Role.ADMIN, Role.AUDIT_SYSTEM)
DEFAULT_SUBJECT = "test-admin"


@functools.cache
def _key_pair() -> tuple[str, str]:
    return generate_key_pair()


def token_settings() -> TokenSettings:
    private, public = _key_pair()
    return TokenSettings(public_keys={TEST_KEY_ID: public}, signing_key_id=TEST_KEY_ID, signing_key=private)


def auth_env(prefix: str = "PROFILE_") -> dict[str, str]:
    private, public = _key_pair()
    return {
        f"{prefix}AUTH_PUBLIC_KEYS": json.dumps({TEST_KEY_ID: public}),
        f"{prefix}AUTH_SIGNING_KEY_ID": TEST_KEY_ID,
        f"{prefix}AUTH_SIGNING_KEY": private,
    }


def connector_auth_env() -> dict[str, str]:
    """Verification only: the connector never holds the private key."""
    _, public = _key_pair()
    return {"CONNECTOR_AUTH_PUBLIC_KEYS": json.dumps({TEST_KEY_ID: public})}


def token(*roles: Role, subject: str = DEFAULT_SUBJECT, ttl: timedelta = timedelta(hours=1)) -> str:
    return TokenIssuer(token_settings()).issue(subject, frozenset(roles or EVERYTHING), ttl)


def bearer(*roles: Role, subject: str = DEFAULT_SUBJECT) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, subject=subject)}"}


def authorize(client: Any, *roles: Role, subject: str = DEFAULT_SUBJECT) -> Any:
    """Every later request of this (httpx or aiohttp-like) client carries the token; returns the client."""
    client.headers.update(bearer(*roles, subject=subject))
    return client

"""Who may use the connector's admin API: the profile service's bearer tokens, verified here too.

The connector holds only public keys (``CONNECTOR_AUTH_PUBLIC_KEYS``); the tokens are the
ones people and services already have for the profile service. ``/health``, ``/ready``,
``/metrics`` and the OpenAPI document (``/schema``) are public. Every other route carries a
``requires(...)`` guard: reads need VIEWER, changes (retries, re-sends) need ADMIN (roles imply
others: ``libs.kit.tokens.ROLE_IMPLIES``). No token, or one that does not verify, is 401; a
token without the role is 403. The verified subject is the actor the admin audit log records.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from libs.kit.logging import get_logger
from libs.kit.openapi import SECURED, roles_note
from libs.kit.tokens import (
    Forbidden,
    Role,
    TokenVerifier,
    Unauthenticated,
    VerifiedToken,
    bearer_token,
    effective_roles,
)

log = get_logger(__name__)
READ = frozenset({Role.VIEWER})
CHANGE = frozenset({Role.ADMIN})


class RoleGuard:
    """A Litestar guard: a verified bearer token with one of ``roles`` (directly or implied by its own)."""

    def __init__(self, roles: frozenset[Role]) -> None:
        self.roles = roles

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # Async although it never awaits: Litestar runs a sync guard in a worker thread.
        token = bearer_token(connection.headers.get("Authorization"))
        if token is None:
            raise Unauthenticated("a bearer token is required")
        verifier: TokenVerifier = connection.app.state.token_verifier
        verified = verifier.verify(token)
        if effective_roles(verified.roles).isdisjoint(self.roles):
            log.info("access_denied", subject=verified.subject, token_id=verified.token_id, path=connection.url.path)
            raise Forbidden(f"this needs one of the roles: {', '.join(sorted(self.roles))}")
        connection.scope["user"] = verified


def requires(roles: frozenset[Role], description: str) -> dict[str, Any]:
    """A route's guard, security requirement and description naming its roles: ``@get(..., **requires(...))``."""
    return {"guards": [RoleGuard(roles)], "security": SECURED, "description": f"{description}\n\n{roles_note(roles)}"}


def principal(request: Request[Any, Any, Any]) -> VerifiedToken:
    found = request.scope.get("user")
    if not isinstance(found, VerifiedToken):
        raise Unauthenticated("a bearer token is required")
    return found

"""Who may use the connector's admin API: the profile service's bearer tokens, verified here too.

The connector holds only public keys (``CONNECTOR_AUTH_PUBLIC_KEYS``); the tokens are the
ones people and services already have for the profile service. ``/health``, ``/ready`` and
``/metrics`` are public. Every other route needs a token: reads (GET) need VIEWER, changes
(POST: retries, re-sends) need ADMIN, unless a handler names its roles with ``requires``.
The verified subject is the actor the admin audit log records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from libs.kit.logging import get_logger
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
PUBLIC_PATHS = frozenset({"/health", "/ready", "/metrics"})
PRINCIPAL_KEY = web.RequestKey("principal", VerifiedToken)
READ_METHODS = frozenset({"GET", "HEAD"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def requires(*roles: Role) -> Callable[[Handler], Handler]:
    """Name the roles a handler needs, instead of the method's default."""

    def mark(handler: Handler) -> Handler:
        handler.required_roles = frozenset(roles)  # type: ignore[attr-defined]
        return handler

    return mark


def required_roles(request: web.Request, handler: Handler) -> frozenset[Role]:
    declared = getattr(handler, "required_roles", None)
    if isinstance(declared, frozenset):
        return declared
    return frozenset({Role.VIEWER}) if request.method in READ_METHODS else frozenset({Role.ADMIN})


def principal(request: web.Request) -> VerifiedToken:
    found = request.get(PRINCIPAL_KEY)
    if not isinstance(found, VerifiedToken):
        raise Unauthenticated("a bearer token is required")
    return found


def authentication(verifier: TokenVerifier) -> Middleware:
    """An aiohttp middleware; inside ``problem_details``, so its errors leave as problem+json."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
            return await handler(request)  # public, or no such route (404/405 as usual)
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise Unauthenticated("a bearer token is required")
        verified = verifier.verify(token)
        needed = required_roles(request, handler)
        if effective_roles(verified.roles).isdisjoint(needed):
            log.info("access_denied", subject=verified.subject, token_id=verified.token_id, path=request.path)
            raise Forbidden(f"this needs one of the roles: {', '.join(sorted(needed))}")
        request[PRINCIPAL_KEY] = verified
        return await handler(request)

    return authenticate

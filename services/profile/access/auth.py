"""Who is calling (authentication) and what they may do (authorization by role).

Every request passes ``authentication_middleware``: it verifies the JWT from
``Authorization: Bearer <token>`` (or, for console pages, the ``profile_session`` HttpOnly
cookie carrying the same JWT) and sets ``request.user`` to a ``Principal``, or to None when
there is no valid token; it never answers by itself. Every route then carries
``guards=[requires(...)]``: no principal is 401 ``UNAUTHENTICATED``, a principal without
the role is 403 ``FORBIDDEN`` (both problem+json). ``create_app`` refuses to start when a
route has no ``requires`` guard and is not public (``opt={"public": True}`` or one of
``PUBLIC_PATHS``, the OpenAPI document): a forgotten guard is a start-up error, not an open route.

Role implication: ADMIN may do what OPERATOR and VIEWER may, OPERATOR what VIEWER may.
AUDIT_SYSTEM (decisions, running updates) and NOTIFIER (contact data for notifications)
are service identities nobody else holds implicitly: an admin does not decide
applications, and nobody but the notifier reads contact data through the internal route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal

import msgspec
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send
from opentelemetry import trace

from libs.kit.logging import get_logger
from libs.kit.tokens import Forbidden, Role, TokenVerifier, Unauthenticated, bearer_token, effective_roles
from services.profile.shared.results import Actor

__all__ = [
    "PUBLIC_PATHS",
    "SESSION_COOKIE",
    "Forbidden",
    "Principal",
    "Role",
    "RoleGuard",
    "Unauthenticated",
    "actor_of",
    "assert_every_route_guarded",
    "authentication_middleware",
    "requires",
]

log = get_logger(__name__)
SESSION_COOKIE = "profile_session"
PUBLIC_PATHS = ("/schema",)  # the OpenAPI document: the contract is public, the data is not
AUTH_FAILURE_KEY = "auth_failure"
ANONYMOUS = "anonymous"  # the actor of a public route (no token)


class Principal(msgspec.Struct, frozen=True):
    subject: str
    roles: frozenset[Role]
    kind: Literal["person", "service"]
    token_id: str | None

    def effective_roles(self) -> frozenset[Role]:
        return effective_roles(self.roles)

    def may_act_as(self, allowed: Iterable[Role]) -> bool:
        return not self.effective_roles().isdisjoint(allowed)


class RoleGuard:
    """A Litestar guard: the caller needs one of ``roles`` (directly or implied by its own)."""

    def __init__(self, roles: frozenset[Role]) -> None:
        self.roles = roles

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # Async although it never awaits: Litestar runs a sync guard in a worker thread (a thread hop per request).
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            detail = connection.scope.get(AUTH_FAILURE_KEY) or "a bearer token is required"
            raise Unauthenticated(str(detail))
        if not principal.may_act_as(self.roles):
            log.info("access_denied", subject=principal.subject, token_id=principal.token_id, path=connection.url.path)
            raise Forbidden(f"this needs one of the roles: {', '.join(sorted(self.roles))}")


def requires(*roles: Role) -> RoleGuard:
    if not roles:
        raise ValueError("requires() needs at least one role")
    return RoleGuard(frozenset(roles))


def guard_roles(handler: BaseRouteHandler) -> frozenset[Role] | None:
    """The roles a route's ``requires`` guards admit, None when it has none."""
    found: frozenset[Role] | None = None
    guards = [guard for layer in handler.ownership_layers for guard in (layer.guards or ())]
    for guard in guards:  # resolve_guards() wraps them; the layers hold the originals
        if isinstance(guard, RoleGuard):
            found = guard.roles if found is None else found & guard.roles
    return found


def is_public(handler: BaseRouteHandler, path: str) -> bool:
    return bool(handler.opt.get("public")) or any(path == p or path.startswith(p + "/") for p in PUBLIC_PATHS)


def assert_every_route_guarded(app: Litestar) -> None:
    """Deny by default: a route that is neither public nor guarded by ``requires`` stops the start."""
    unguarded = [
        f"{sorted(handler.http_methods)} {route.path}"
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.http_methods != {"OPTIONS"} and guard_roles(handler) is None and not is_public(handler, route.path)
    ]
    if unguarded:
        raise RuntimeError(f"routes without a requires(...) guard: {sorted(unguarded)}")


def _token_of(scope: Scope) -> str | None:
    authorization: str | None = None
    cookie_header: str | None = None
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            authorization = value.decode("latin-1")
        elif key == b"cookie":
            cookie_header = value.decode("latin-1")
    if token := bearer_token(authorization):
        return token
    if cookie_header:
        try:
            cookies = SimpleCookie(cookie_header)
        except CookieError:
            return None
        if morsel := cookies.get(SESSION_COOKIE):
            return morsel.value or None
    return None


def actor_of(request: Request[Any, Any, Any]) -> Actor:
    """Who the audit log names: the verified token's subject, never a header the caller writes."""
    principal = request.scope.get("user")
    actor_id = principal.subject if isinstance(principal, Principal) else ANONYMOUS
    context = trace.get_current_span().get_span_context()
    return Actor(
        actor_id=actor_id,
        ip_address=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:500] or None,
        trace_id=format(context.trace_id, "032x") if context.is_valid else None,
    )


def principal_of(verifier: TokenVerifier, token: str) -> Principal:
    verified = verifier.verify(token)
    return Principal(verified.subject, verified.roles, verified.kind, verified.token_id)


def authentication_middleware(verifier: TokenVerifier) -> Callable[[ASGIApp], ASGIApp]:
    """Sets ``scope["user"]`` (a Principal or None); the guards decide, this never answers."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def authenticate(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in {ScopeType.HTTP, ScopeType.WEBSOCKET}:
                scope["user"] = None
                if token := _token_of(scope):
                    try:
                        scope["user"] = principal_of(verifier, token)
                    except Unauthenticated as exc:
                        scope[AUTH_FAILURE_KEY] = exc.detail  # type: ignore[literal-required]
            await app(scope, receive, send)

        return authenticate

    return middleware

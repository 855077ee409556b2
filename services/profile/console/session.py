"""Who uses the console: the session cookie, the signed-in principal, roles per page, CSRF tokens.

The session is the person's JWT itself, in the HttpOnly ``profile_session`` cookie that the
authentication middleware reads like a bearer header (SameSite=Strict, path ``/console``).
Because a cookie rides along with any request the browser makes, every form that changes
something carries a CSRF token: an HMAC of the session token, so it needs no server-side
state, is the same on every replica and dies with the session; a page from another site
cannot read the cookie and so cannot compute it. The login form, which has no session yet,
uses a random token in a short-lived cookie of its own (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any, NamedTuple

from litestar import Request
from litestar.datastructures import Cookie, FormMultiDict

from libs.kit.errors import AppError
from libs.kit.tokens import Unauthenticated, bearer_token
from services.profile.access.auth import SESSION_COOKIE, Principal, Role, actor_of, requires
from services.profile.console.connector_client import Caller
from services.profile.console.settings import ConsoleSettings
from services.profile.shared.results import Actor

CONSOLE_PATH = "/console"
LOGIN_PATH = f"{CONSOLE_PATH}/login"
LOGIN_CSRF_COOKIE = "console_login_csrf"
CSRF_FIELD = "csrf"
CONSOLE_ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)

# Roles per page, one place: reading pages, what operators change, what only admins do.
READ = [requires(Role.VIEWER)]
OPERATE = [requires(Role.OPERATOR)]
ADMINISTER = [requires(Role.ADMIN)]


class CsrfRejected(AppError):
    code = "CSRF_REJECTED"
    status = 403
    title = "This form has expired"


def principal(request: Request[Any, Any, Any]) -> Principal:
    """The signed-in person (the route's guard has checked there is one)."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthenticated("sign in to use the console")
    return user


def session_token(request: Request[Any, Any, Any]) -> str | None:
    return bearer_token(request.headers.get("authorization")) or request.cookies.get(SESSION_COOKIE) or None


def csrf_token(request: Request[Any, Any, Any]) -> str:
    token = session_token(request)
    return _csrf_of(token) if token else ""


def _csrf_of(token: str) -> str:
    return hmac.new(token.encode(), b"console-csrf-v1", hashlib.sha256).hexdigest()


async def verified_form(request: Request[Any, Any, Any]) -> FormMultiDict:
    """The posted form, once its CSRF token matches the session's."""
    form = await request.form()
    sent = str(form.get(CSRF_FIELD) or "")
    expected = csrf_token(request)
    if not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRejected("the form was not issued for this session; reload the page and try again")
    return form


class Submission(NamedTuple):
    """A verified form and who sent it: every change made from the console is audited under its actor."""

    form: FormMultiDict
    actor: Actor


async def submitted(request: Request[Any, Any, Any]) -> Submission:
    """The posted form once its CSRF token matches the session's, and the actor the audit log names."""
    return Submission(await verified_form(request), actor_of(request))


def caller(request: Request[Any, Any, Any]) -> Caller:
    """On whose behalf the console calls the sync-connector: the signed-in person, with their own token."""
    principal(request)  # a page calls the connector only for a signed-in person
    return Caller(token=session_token(request), user_agent=request.headers.get("user-agent"))


def may(request: Request[Any, Any, Any], role: Role) -> bool:
    user = request.scope.get("user")
    return isinstance(user, Principal) and user.may_act_as([role])


def session_cookie(token: str, expires_at: datetime, settings: ConsoleSettings) -> Cookie:
    remaining = int((expires_at - datetime.now(UTC)).total_seconds())
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path=CONSOLE_PATH,
        max_age=max(0, min(remaining, settings.session_max_age_s)),
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
    )


def cleared_session_cookie(settings: ConsoleSettings) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="",
        path=CONSOLE_PATH,
        max_age=0,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
    )


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def login_csrf_cookie(value: str, settings: ConsoleSettings) -> Cookie:
    return Cookie(
        key=LOGIN_CSRF_COOKIE,
        value=value,
        path=LOGIN_PATH,
        max_age=3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
    )


def login_csrf_valid(request: Request[Any, Any, Any], sent: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    return bool(expected) and hmac.compare_digest(sent, expected)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target and target.startswith(CONSOLE_PATH) and not target.startswith("//") and "\\" not in target:
        return target
    return f"{CONSOLE_PATH}/"

"""Signing in and out: a pasted bearer token becomes the HttpOnly session cookie.

``make run`` prints a token per role, and ``python -m services.profile token issue`` makes
more; the console keeps no passwords. The token is checked by the same verifier as the
API's, and must carry a console role (viewer, operator or admin).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Template

from libs.kit.logging import get_logger
from libs.kit.tokens import Unauthenticated
from services.profile.access.auth import Principal
from services.profile.console.context import console_of
from services.profile.console.metrics import ConsoleMetrics
from services.profile.console.rendering import render, see_other
from services.profile.console.session import (
    CONSOLE_ROLES,
    LOGIN_CSRF_COOKIE,
    LOGIN_PATH,
    READ,
    cleared_session_cookie,
    login_csrf_cookie,
    login_csrf_valid,
    new_login_csrf,
    principal,
    safe_next,
    session_cookie,
    verified_form,
)
from services.profile.console.settings import ConsoleSettings

log = get_logger(__name__)
PUBLIC = {"public": True}


def _settings(request: Request[Any, Any, Any]) -> ConsoleSettings:
    settings: ConsoleSettings = console_of(request).settings
    return settings


def _login_form(
    request: Request[Any, Any, Any], next_path: str, *, error: str | None = None, status_code: int = 200
) -> Template:
    value = new_login_csrf()
    page = render(
        request,
        "login.html",
        {
            "login_csrf": value,
            "next": safe_next(next_path),
            "expired": request.query_params.get("expired") == "1",
            "error": error,
        },
        title="Sign in",
        status_code=status_code,
    )
    page.cookies.append(login_csrf_cookie(value, _settings(request)))
    return page


@get("/login", opt=PUBLIC, name="console:login")
async def login_page(request: Request[Any, Any, Any]) -> Template:
    return _login_form(request, request.query_params.get("next", ""))


@post("/login", opt=PUBLIC)
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    metrics: ConsoleMetrics = console_of(request).metrics
    next_path = str(form.get("next") or "")
    if not login_csrf_valid(request, str(form.get("login_csrf") or "")):
        metrics.sign_ins.labels("form_expired").inc()
        error = "The sign-in form expired. Paste the token again."
        return _login_form(request, next_path, error=error, status_code=403)
    token = str(form.get("token") or "").strip().removeprefix("Bearer ").strip()
    if not token:
        metrics.sign_ins.labels("empty").inc()
        return _login_form(request, next_path, error="Paste a bearer token to sign in.", status_code=422)
    try:
        verified = console_of(request).token_verifier.verify(token)
    except Unauthenticated as exc:
        metrics.sign_ins.labels("invalid_token").inc()
        log.info("console_sign_in_refused", reason=exc.detail)
        return _login_form(request, next_path, error=f"That token was not accepted: {exc.detail}.", status_code=401)
    person = Principal(verified.subject, verified.roles, verified.kind, verified.token_id)
    if not person.may_act_as(CONSOLE_ROLES):
        metrics.sign_ins.labels("no_console_role").inc()
        roles = ", ".join(sorted(verified.roles)) or "none"
        error = f"That token's roles ({roles}) do not open the console: it needs viewer, operator or admin."
        return _login_form(request, next_path, error=error, status_code=403)
    metrics.sign_ins.labels("ok").inc()
    log.info("console_signed_in", subject=verified.subject, token_id=verified.token_id)
    redirect = see_other(safe_next(next_path))
    redirect.cookies.append(session_cookie(token, verified.expires_at, _settings(request)))
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return redirect


@post("/logout", guards=READ)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    await verified_form(request)
    log.info("console_signed_out", subject=principal(request).subject)
    redirect = see_other(LOGIN_PATH, notice="signed-out")
    redirect.cookies.append(cleared_session_cookie(_settings(request)))
    return redirect

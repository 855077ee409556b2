"""Pages: the Jinja environment, the context every page gets, redirects after a POST, notices.

After a change the console redirects (POST-redirect-GET) to a page with ``?notice=<code>``
and a count; the message is looked up here, so a URL can only ever show one of these texts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig

from services.profile.access.auth import Principal, Role
from services.profile.console.charts import TIME_UNITS, duration, unit_index
from services.profile.console.forms import FieldProblems
from services.profile.console.session import csrf_token, may
from services.profile.shared.pagination import Page

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

NOTICES: dict[str, str] = {
    "signed-out": "You are signed out.",
    "redriven": "Re-drove {n} outbox {entries}; the relay publishes them in commit order.",
    "redriven-none": "Nothing was re-driven: the entries are pending already (on their way).",
    "retried": "Retry scheduled: the record is retrying and will be delivered with the same Idempotency-Key.",
    "retried-many": "Retry scheduled for {n} failed sync {records}.",
    "retried-limit": "Retry scheduled for {n} failed sync {records}; the bulk limit was reached, retry again for more.",
    "deleted": "The customer is in the recycle bin.",
    "restored": "The customer is back out of the recycle bin.",
    "backup-created": "Backup point created ({n} customers).",
    "backup-restored": "Restore done: {n} customers changed.",
    "reapplied": "The application is pending again, re-based on the current profile.",
    "created": "The customer is created (version 1).",
    "updated": "The customer is saved as a new version.",
    "rolled-back": "Rolled back: a new version with the content of version {n}.",
    "rolled-back-none": "Nothing was rolled back: the customer already equals that version.",
    "rolled-back-to-bin": "Rolled back: at that version the customer was in the recycle bin, and it is there again.",
}

# Pages in the navigation, with the role each needs.
NAVIGATION: tuple[tuple[str, str, Role], ...] = (
    ("overview", "Overview", Role.VIEWER),
    ("outbox", "Outbox", Role.ADMIN),
    ("sync", "Sync records", Role.VIEWER),
    ("customers", "Customers", Role.VIEWER),
    ("journey", "Journey", Role.VIEWER),
    ("applications", "Applications", Role.VIEWER),
    ("recycle-bin", "Recycle bin", Role.VIEWER),
    ("backups", "Backups", Role.VIEWER),
    ("audit", "Audit log", Role.VIEWER),
    ("admin-notifications", "Admin notifications", Role.VIEWER),
)


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when_precise(value: datetime | None) -> str:
    """To the millisecond: a journey's steps are often less than a second apart."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in words an operator reads at a glance."""
    if value is None:
        return "—"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    index = unit_index(seconds, TIME_UNITS)
    if index == 0:
        return f"{max(seconds, 0)} s"
    (unit, length), (smaller, smaller_length) = TIME_UNITS[index], TIME_UNITS[index - 1]
    return f"{seconds // length} {unit} {seconds % length // smaller_length} {smaller}"


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def query(base: Mapping[str, Any], **changes: Any) -> str:
    """``?a=1&b=2`` from ``base`` with ``changes`` applied; empty values are left out."""
    merged = {**base, **changes}
    pairs = [(k, str(v)) for k, v in merged.items() if v not in (None, "")]
    return f"?{urlencode(pairs)}" if pairs else ""


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=when, when_precise=when_precise, age=age, duration=duration, pretty_json=pretty_json
    )
    environment.globals.update(query=query)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def _notice(request: Request[Any, Any, Any]) -> str | None:
    text = NOTICES.get(request.query_params.get("notice", ""))
    if text is None:
        return None
    raw = request.query_params.get("n", "")
    count = int(raw) if raw.isdigit() else 0
    return text.format(
        n=count, entries="entry" if count == 1 else "entries", records="record" if count == 1 else "records"
    )


def render(
    request: Request[Any, Any, Any],
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    page: str = "",
    title: str = "",
    status_code: int = 200,
) -> Template:
    user = request.scope.get("user")
    signed_in = user if isinstance(user, Principal) else None
    common = {
        "page": page,
        "title": title,
        "user": signed_in,
        "roles": ", ".join(sorted(signed_in.roles)) if signed_in else "",
        "csrf": csrf_token(request) if signed_in else "",
        "notice": _notice(request),
        "navigation": [item for item in NAVIGATION if signed_in and may(request, item[2])],
        "can_operate": may(request, Role.OPERATOR),
        "can_administer": may(request, Role.ADMIN),
        "now": datetime.now(UTC),
        "error": None,
    }
    return Template(template_name=template, context={**common, **(context or {})}, status_code=status_code)


def render_listing(  # noqa: PLR0917 - the parts of a filtered listing page
    request: Request[Any, Any, Any],
    template: str,
    raw: Mapping[str, str],
    fields: Sequence[str],
    problems: FieldProblems,
    found: Page[Any] | None,
    choices: Mapping[str, Any],
    *,
    page: str,
    title: str,
) -> Template:
    """A listing under its filters (``fields`` of ``raw``, as entered) and the lists they choose from:
    the page found, or 422 with the filters' problems in words when there is none."""
    context = {
        "filters": {name: raw[name] for name in fields},
        **choices,
        "items": found.items if found else [],
        "next_cursor": found.next_cursor if found else None,
        "error": problems.text,
    }
    return render(request, template, context, page=page, title=title, status_code=422 if problems else 200)


def see_other(target: str, **params: Any) -> Redirect:
    """The redirect after a POST (303: the browser follows with a GET); ``params`` join the target's query."""
    path, _, existing = target.partition("?")
    kept = {k: v for k, v in parse_qsl(existing) if k not in ("notice", "n")}
    return Redirect(path + query(kept, **params), status_code=303)


def security_headers(response: Response[Any]) -> Response[Any]:
    """Console pages: own scripts and styles only, never framed, never cached, no referrer elsewhere."""
    response.headers.update(
        {
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        }
    )
    return response

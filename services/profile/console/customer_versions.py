"""A customer's versions: the list, one version with its difference to the current one, rollback.

Personal data (contact data, tax number) of past versions is shown to operators and admins;
a viewer sees that it changed. A rollback asks first: its confirmation page is a dry run
listing every field that will change.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from services.profile.access.auth import Role, actor_of
from services.profile.console.context import console_of
from services.profile.console.customer_records import FIELDS, LABELS, customer_path
from services.profile.console.forms import PathId, form_text
from services.profile.console.metrics import counted
from services.profile.console.rendering import render, see_other
from services.profile.console.session import OPERATE, READ, may, submitted
from services.profile.customers.versions import VersionService
from services.profile.domain.ledger import SENSITIVE_LABELS

PathVersion = Annotated[int, PathParameter(ge=1, le=2**31 - 1)]
VERSION_PATH = "/customers/{customer_id:str}/versions/{version:int}"


class VersionAt(NamedTuple):
    """The customer and version a page's address names."""

    customer_id: str
    version: int


def _version_at(customer_id: PathId, version: PathVersion) -> VersionAt:
    return VersionAt(customer_id, version)


# The pages of one version read it from their address as ``at`` (validated like any path parameter).
AT_VERSION = {"at": Provide(_version_at, sync_to_thread=False)}


def _personal(request: Request[Any, Any, Any]) -> bool:
    """May this person read past personal data (contact data, tax number)? Those who may change it."""
    return may(request, Role.OPERATOR)


@get("/customers/{customer_id:str}/versions", guards=READ)
async def versions_list(
    request: Request[Any, Any, Any], customer_id: PathId, versions: NamedDependency[VersionService]
) -> Template:
    cursor = request.query_params.get("cursor") or None
    page = await versions.page(customer_id, cursor, console_of(request).settings.page_size)
    context = {
        "customer_id": customer_id,
        "items": page.items,
        "next_cursor": page.next_cursor,
        "current": page.items[0].state.version if page.items and cursor is None else None,
        "labels": LABELS,
    }
    return render(request, "customer_versions.html", context, page="customers", title=f"Versions of {customer_id}")


@get(VERSION_PATH, guards=READ, dependencies=AT_VERSION)
async def version_detail(
    request: Request[Any, Any, Any], at: NamedDependency[VersionAt], versions: NamedDependency[VersionService]
) -> Template:
    customer_id, version = at
    entry = await versions.get(customer_id, version)
    comparison = await versions.compare(customer_id, version, None)
    context = {
        "customer_id": customer_id,
        "entry": entry,
        "state": entry.state,
        "current_version": comparison.new.version,
        "current": comparison.new,
        "differences": comparison.differences,
        "personal": _personal(request),
        "personal_labels": SENSITIVE_LABELS,
        "labels": LABELS,
        "fields": FIELDS,
    }
    return render(
        request, "customer_version.html", context, page="customers", title=f"{customer_id} at version {version}"
    )


@get(f"{VERSION_PATH}/rollback", guards=OPERATE, dependencies=AT_VERSION)
async def confirm_rollback(
    request: Request[Any, Any, Any], at: NamedDependency[VersionAt], versions: NamedDependency[VersionService]
) -> Template:
    customer_id, version = at
    current = (await versions.compare(customer_id, version, None)).new
    result = await versions.rollback(customer_id, version, current.version, actor_of(request), dry_run=True)
    context = {"customer_id": customer_id, "result": result, "current": current, "labels": LABELS}
    return render(request, "customer_rollback.html", context, page="customers", title="Confirm rollback")


@post(f"{VERSION_PATH}/rollback", guards=OPERATE, dependencies=AT_VERSION)
async def rollback(
    request: Request[Any, Any, Any], at: NamedDependency[VersionAt], versions: NamedDependency[VersionService]
) -> Redirect:
    customer_id, version = at
    form, actor = await submitted(request)
    raw = form_text(form, "version")
    expected = int(raw) if raw.isdigit() else 0
    result = await counted(request, "customer_rollback", versions.rollback(customer_id, version, expected, actor))
    if not result.changed:
        return see_other(customer_path(customer_id) + "/versions", notice="rolled-back-none")
    if result.customer.is_deleted:
        return see_other("/console/recycle-bin", notice="rolled-back-to-bin")
    return see_other(customer_path(customer_id), notice="rolled-back", n=version)


HANDLERS = (versions_list, version_detail, confirm_rollback, rollback)

"""Backups: list, take one now, dry-run a restore (the differences), restore with confirmation.

A restore's confirmation page runs a dry run first, so it says how many customers will
change; the restore itself is the ledger's use case (chunked, audited, one at a time).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect, Template

from libs.kit.errors import ValidationError
from services.profile.access.auth import actor_of
from services.profile.backups.restore import RestoreService
from services.profile.backups.service import BackupService
from services.profile.console.context import console_of
from services.profile.console.forms import FieldProblems, PathId, form_text, text
from services.profile.console.metrics import counted
from services.profile.console.rendering import render, see_other
from services.profile.console.session import ADMINISTER, READ, submitted
from services.profile.domain.restore import BackupKind

MAX_LABEL = 200


def _backup_path(backup_id: str) -> str:
    return f"/console/backups/{quote(backup_id, safe='')}"


def _customer_id(raw: str) -> str | None:
    problems = FieldProblems()
    customer_id = text(raw.strip(), "Customer id", problems)
    if problems:
        raise ValidationError(problems.text or "invalid customer id")
    return customer_id


def _dry_run_page(path: str, template: str, title: str) -> HTTPRouteHandler:
    """A page showing what restoring a backup would change (a dry run: it writes nothing); ``title`` may name
    ``{backup_id}``."""

    @get(path, guards=ADMINISTER)
    async def dry_run_page(
        request: Request[Any, Any, Any],
        backup_id: PathId,
        backups: NamedDependency[BackupService],
        restores: NamedDependency[RestoreService],
    ) -> Template:
        point = await backups.get(backup_id)
        customer_id = _customer_id(request.query_params.get("customerId", ""))
        report = await restores.restore(backup_id, customer_id, dry_run=True, actor=actor_of(request))
        context = {"backup": point, "report": report, "customer_id": customer_id or ""}
        return render(request, template, context, page="backups", title=title.format(backup_id=backup_id))

    return dry_run_page


@get("/backups", guards=READ, name="console:backups")
async def backup_list(request: Request[Any, Any, Any], backups: NamedDependency[BackupService]) -> Template:
    cursor = request.query_params.get("cursor") or None
    page = await backups.page(cursor, console_of(request).settings.page_size)
    context = {"items": page.items, "next_cursor": page.next_cursor, "max_label": MAX_LABEL}
    return render(request, "backups.html", context, page="backups", title="Backups")


@post("/backups", guards=ADMINISTER)
async def create_backup(request: Request[Any, Any, Any], backups: NamedDependency[BackupService]) -> Redirect:
    form, actor = await submitted(request)
    problems = FieldProblems()
    label = text(form_text(form, "label"), "Label", problems, max_length=MAX_LABEL)
    if problems:
        raise ValidationError(problems.text or "invalid label")
    point = await counted(request, "backup_create", backups.create(BackupKind.MANUAL, label, actor))
    return see_other(_backup_path(point.backup_id), notice="backup-created", n=point.customer_count)


@get("/backups/{backup_id:str}", guards=READ)
async def backup_detail(
    request: Request[Any, Any, Any], backup_id: PathId, backups: NamedDependency[BackupService]
) -> Template:
    point = await backups.get(backup_id)
    return render(request, "backup.html", {"backup": point, "report": None}, page="backups", title=point.backup_id)


dry_run = _dry_run_page("/backups/{backup_id:str}/dry-run", "backup.html", "Dry run of {backup_id}")
# The confirmation runs a dry run first, so it says how many customers the restore changes.
confirm_restore = _dry_run_page("/backups/{backup_id:str}/restore", "backup_restore.html", "Confirm restore")


@post("/backups/{backup_id:str}/restore", guards=ADMINISTER)
async def restore(
    request: Request[Any, Any, Any], backup_id: PathId, restores: NamedDependency[RestoreService]
) -> Redirect:
    form, actor = await submitted(request)
    customer_id = _customer_id(form_text(form, "customerId"))
    running = restores.restore(backup_id, customer_id, dry_run=False, actor=actor)
    report = await counted(request, "backup_restore", running)
    return see_other(_backup_path(backup_id), notice="backup-restored", n=report.customers_changed)

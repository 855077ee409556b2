"""Backups and restores over HTTP (seed 004)."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get, post
from litestar.di import NamedDependency

from services.profile.access.auth import Role, requires
from services.profile.backups.restore import RestoreService
from services.profile.backups.restore_report import RestoreReport
from services.profile.backups.schemas import BackupPage, BackupResponse, CreateBackupRequest, RestoreRequest
from services.profile.backups.service import BackupService
from services.profile.domain.restore import BackupKind
from services.profile.shared.results import Actor
from services.profile.shared.web import examples as ex
from services.profile.shared.web.params import Cursor, Limit, PathId
from services.profile.shared.web.routes import Ok, Routes, created, page_body, page_ok, route

_ADMINS = requires(Role.ADMIN)  # take a backup point, restore
_VIEWERS = requires(Role.VIEWER)


class BackupController(Routes, path="/v1/backups", tag="backups"):
    @route(post, "/", _ADMINS, Ok(BackupResponse, ex.BACKUP, "The backup point", 201), "VALIDATION", "DATABASE_ERROR")
    async def create_backup(
        self,
        data: Annotated[CreateBackupRequest, ex.body("a labelled backup", {"label": ex.BACKUP["label"]})],
        backups: NamedDependency[BackupService],
        actor: NamedDependency[Actor],
    ) -> Response[BackupResponse]:
        """Snapshot the whole ledger (recycle bin included) now, in one transaction."""
        point = await backups.create(BackupKind.MANUAL, data.label, actor)
        return created(BackupResponse.of(point), f"{self.path}/{point.backup_id}")

    @route(get, "/", _VIEWERS, page_ok(BackupPage, ex.BACKUP, "Newest first"), "VALIDATION")
    async def list_backups(
        self, backups: NamedDependency[BackupService], cursor: Cursor = None, limit: Limit = None
    ) -> BackupPage:
        """Backup points (manual and daily), newest first."""
        return page_body(BackupPage, await backups.page(cursor, limit), BackupResponse.of)

    @route(get, "/{backup_id:str}", _VIEWERS, Ok(BackupResponse, ex.BACKUP, "The point"), "BACKUP_NOT_FOUND")
    async def get_backup(self, backup_id: PathId, backups: NamedDependency[BackupService]) -> BackupResponse:
        return BackupResponse.of(await backups.get(backup_id))

    @route(
        post,
        "/{backup_id:str}/restore",
        _ADMINS,
        Ok(RestoreReport, ex.RESTORE_REPORT, "What changed (or, in a dry run, would change)"),
        "BACKUP_NOT_FOUND",
        "PROFILE_NOT_FOUND",
        "RESTORE_IN_PROGRESS",
        "VALIDATION",
        "DATABASE_ERROR",
    )
    async def restore_backup(
        self,
        backup_id: PathId,
        data: Annotated[RestoreRequest, ex.body("dry run of a whole-ledger restore", {"dryRun": True})],
        restores: NamedDependency[RestoreService],
        actor: NamedDependency[Actor],
    ) -> RestoreReport:
        """Restore the whole ledger, or one customer (``customerId``), to this backup point.

        Every customer that differs moves forward to a new version equal to the snapshot:
        renamed customers get history, a completed application (origin ``backup_restore``),
        an audit entry and an outbox event, so external systems converge on the restored
        names; customers deleted since are taken out of the recycle bin, purged ones are
        written again; customers created after the backup (whole-ledger restore only) go
        to the recycle bin. ``dryRun`` reports the differences and writes nothing.
        """
        return await restores.restore(backup_id, data.customer_id, data.dry_run, actor)

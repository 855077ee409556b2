"""Backups, restores and the operation log (seed 004)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from services.profile.domain.restore import BackupKind
from services.profile.entrypoints.http import examples as ex
from services.profile.entrypoints.http.auth import Role, requires
from services.profile.entrypoints.http.customer_routes import Cursor, Limit, PathId
from services.profile.entrypoints.http.ledger_schemas import (
    AuditLogItem,
    AuditLogPage,
    BackupPage,
    BackupResponse,
    CreateBackupRequest,
    RestoreRequest,
)
from services.profile.service_layer.audit import AuditLogService
from services.profile.service_layer.backups import BackupService
from services.profile.service_layer.ports import AuditFilter
from services.profile.service_layer.restore import RestoreReport, RestoreService
from services.profile.service_layer.results import Actor


class BackupController(Controller):
    path = "/v1/backups"
    tags = ["backups"]  # noqa: RUF012

    @post(
        "/",
        guards=[requires(Role.ADMIN)],
        status_code=201,
        responses=ex.responses(201, BackupResponse, ex.BACKUP, "The backup point", "VALIDATION", "DATABASE_ERROR"),
    )
    async def create_backup(
        self,
        data: Annotated[CreateBackupRequest, ex.body("a labelled backup", {"label": ex.BACKUP["label"]})],
        backups: NamedDependency[BackupService],
        actor: NamedDependency[Actor],
    ) -> Response[BackupResponse]:
        """Snapshot the whole ledger (recycle bin included) now, in one transaction."""
        point = await backups.create(BackupKind.MANUAL, data.label, actor)
        return Response(
            BackupResponse.of(point), status_code=201, headers={"Location": f"{self.path}/{point.backup_id}"}
        )

    @get(
        "/",
        guards=[requires(Role.VIEWER)],
        responses=ex.responses(200, BackupPage, ex.page_of(ex.BACKUP), "Newest first", "VALIDATION"),
    )
    async def list_backups(
        self, backups: NamedDependency[BackupService], cursor: Cursor = None, limit: Limit = None
    ) -> BackupPage:
        """Backup points (manual and daily), newest first."""
        page = await backups.page(cursor, limit)
        return BackupPage([BackupResponse.of(p) for p in page.items], page.next_cursor)

    @get(
        "/{backup_id:str}",
        guards=[requires(Role.VIEWER)],
        responses=ex.responses(200, BackupResponse, ex.BACKUP, "The point", "BACKUP_NOT_FOUND"),
    )
    async def get_backup(self, backup_id: PathId, backups: NamedDependency[BackupService]) -> BackupResponse:
        return BackupResponse.of(await backups.get(backup_id))

    @post(
        "/{backup_id:str}/restore",
        guards=[requires(Role.ADMIN)],
        status_code=200,
        responses=ex.responses(
            200,
            RestoreReport,
            ex.RESTORE_REPORT,
            "What changed (or, in a dry run, would change)",
            "BACKUP_NOT_FOUND",
            "PROFILE_NOT_FOUND",
            "RESTORE_IN_PROGRESS",
            "VALIDATION",
            "DATABASE_ERROR",
        ),
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


class AuditLogController(Controller):
    path = "/v1/audit-logs"
    tags = ["operation log"]  # noqa: RUF012

    @get(
        "/",
        guards=[requires(Role.VIEWER)],
        responses=ex.responses(200, AuditLogPage, ex.page_of(ex.AUDIT_ITEM), "Newest first", "VALIDATION"),
    )
    async def list_audit_logs(
        self,
        *,
        audit_log: NamedDependency[AuditLogService],
        customer_id: Annotated[str | None, QueryParameter(name="customerId", max_length=64)] = None,
        actor_id: Annotated[str | None, QueryParameter(name="actorId", max_length=100)] = None,
        event_type: Annotated[
            str | None, QueryParameter(name="eventType", max_length=50, description="e.g. CUSTOMER_UPDATED")
        ] = None,
        time_from: Annotated[datetime | None, QueryParameter(name="from", description="at or after")] = None,
        time_to: Annotated[datetime | None, QueryParameter(name="to", description="before")] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> AuditLogPage:
        """The append-only operation log. Contact data never appears in it: ``changedFields`` names
        a changed phone, e-mail or address without its value."""
        filters = AuditFilter(customer_id, actor_id, event_type, time_from, time_to)
        page = await audit_log.page(filters, cursor, limit)
        return AuditLogPage([AuditLogItem.of(entry) for entry in page.items], page.next_cursor)

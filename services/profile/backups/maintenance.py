"""The ledger's housekeeping, meant for a daily cron job (``python -m services.profile maintenance``).

Each task is independent and safe to repeat: partitions are created only when missing,
the daily backup only when today's is missing, purges and expiries only touch what is
due. A failing task is logged and counted and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import msgspec

from libs.kit.errors import AppError
from libs.kit.logging import get_logger
from libs.kit.progress import Progress, no_progress
from services.profile.backups.service import BackupService
from services.profile.domain.ledger import purge_cutoff
from services.profile.domain.restore import BackupKind
from services.profile.shared.audit import AuditEvent, customer_entry
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.ledger_settings import LedgerSettings
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.ports import UnitOfWorkFactory
from services.profile.shared.results import Actor

log = get_logger(__name__)
MAINTENANCE_ACTOR = Actor(actor_id="maintenance", user_agent="services.profile maintenance")
_EXPIRED_KEYS_PER_TRANSACTION = 5_000


class MaintenanceTask(StrEnum):
    PARTITIONS = "partitions"
    PURGE = "purge"
    BACKUP = "backup"
    BACKUP_RETENTION = "backup-retention"
    IDEMPOTENCY_KEYS = "idempotency-keys"
    VERSIONS = "versions"


class MaintenanceReport(msgspec.Struct, rename="camel"):
    partitions_created: int = 0
    customers_purged: int = 0
    pre_purge_backup: str | None = None  # taken by itself before the purge removed anyone
    backup_taken: str | None = None
    backups_expired: list[str] = msgspec.field(default_factory=list)
    idempotency_keys_deleted: int = 0
    versions_pruned: int = 0
    failed_tasks: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class MaintenanceService:
    uow_factory: UnitOfWorkFactory
    backups: BackupService
    settings: LedgerSettings
    metrics: LedgerMetrics
    clock: Clock = utc_now

    async def run(
        self, tasks: Iterable[MaintenanceTask] = tuple(MaintenanceTask), progress: Progress = no_progress
    ) -> MaintenanceReport:
        """Run ``tasks`` in order; ``progress`` hears of the rows each batch of the purge and prunes removed."""
        report = MaintenanceReport()
        steps: dict[MaintenanceTask, Callable[[MaintenanceReport, Progress], Awaitable[None]]] = {
            MaintenanceTask.PARTITIONS: self._partitions,
            MaintenanceTask.PURGE: self._purge,
            MaintenanceTask.BACKUP: self._backup,
            MaintenanceTask.BACKUP_RETENTION: self._backup_retention,
            MaintenanceTask.IDEMPOTENCY_KEYS: self._idempotency_keys,
            MaintenanceTask.VERSIONS: self._versions,
        }
        for task in tasks:
            try:
                await steps[task](report, progress)
            except AppError as exc:
                report.failed_tasks.append(task.value)
                self.metrics.maintenance_tasks.labels(task.value, exc.code).inc()
                log.exception("maintenance_task_failed", task=task.value, code=exc.code, error=exc.detail)
            else:
                self.metrics.maintenance_tasks.labels(task.value, "ok").inc()
        log.info("maintenance_done", **msgspec.to_builtins(report))
        return report

    async def _partitions(self, report: MaintenanceReport, _: Progress) -> None:
        async with self.uow_factory() as uow:
            report.partitions_created = await uow.maintenance.ensure_history_partitions(
                self.settings.history_partitions_ahead
            )
            await uow.commit()

    async def _purge(self, report: MaintenanceReport, progress: Progress) -> None:
        """Customers in the recycle bin longer than the retention period are deleted for good.

        Seed 004 "重要操作即时备份": before the first customer goes, a backup point of the whole ledger is
        taken (kind ``pre_purge``). The first batch finds out whether anyone is due: when it finds someone,
        it is rolled back, the backup point is taken, and the purge starts again.
        """
        retention = timedelta(days=self.settings.recycle_bin_retention_days)
        while True:
            now = self.clock()
            async with self.uow_factory() as uow:
                purged = await uow.customers.purge_deleted_before(
                    purge_cutoff(now, retention), now, self.settings.purge_batch_size
                )
                probe = bool(purged) and report.pre_purge_backup is None
                if not probe:
                    await uow.audit.add_many(
                        [
                            customer_entry(
                                AuditEvent.CUSTOMER_PURGED,
                                "purge from recycle bin after retention",
                                MAINTENANCE_ACTOR,
                                before=customer,
                                after=customer,
                                changed=(),
                                extra={"customerName": customer.customer_name, "deletedAt": str(customer.deleted_at)},
                            )
                            for customer in purged
                        ],
                        now,
                    )
                    await uow.commit()
            if probe:  # left without commit: rolled back, nobody went yet
                point = await self.backups.create(BackupKind.PRE_PURGE, "before purge", MAINTENANCE_ACTOR)
                report.pre_purge_backup = point.backup_id
                continue
            report.customers_purged += len(purged)
            progress(len(purged))
            self.metrics.customer_changes.labels("purged").inc(len(purged))
            if len(purged) < self.settings.purge_batch_size:
                return

    async def _backup(self, report: MaintenanceReport, _: Progress) -> None:
        point = await self.backups.take_daily(MAINTENANCE_ACTOR)
        report.backup_taken = point.backup_id if point is not None else None

    async def _backup_retention(self, report: MaintenanceReport, _: Progress) -> None:
        report.backups_expired = await self.backups.expire(
            timedelta(days=self.settings.backup_retention_days), self.settings.backup_keep_min, MAINTENANCE_ACTOR
        )

    async def _versions(self, report: MaintenanceReport, progress: Progress) -> None:
        """Versions beyond ``versions_keep_per_customer`` per customer, oldest first; 0 keeps them all."""
        keep = self.settings.versions_keep_per_customer
        if keep <= 0:
            return
        after: str | None = None
        while True:
            async with self.uow_factory() as uow:
                pruned, after = await uow.customers.prune_versions(keep, after, self.settings.versions_prune_batch_size)
                await uow.commit()
            report.versions_pruned += pruned
            progress(pruned)
            if after is None:
                return

    async def _idempotency_keys(self, report: MaintenanceReport, progress: Progress) -> None:
        while True:
            async with self.uow_factory() as uow:
                deleted = await uow.maintenance.delete_expired_idempotency_keys(
                    self.clock(), _EXPIRED_KEYS_PER_TRANSACTION
                )
                await uow.commit()
            report.idempotency_keys_deleted += deleted
            progress(deleted)
            if deleted < _EXPIRED_KEYS_PER_TRANSACTION:
                return

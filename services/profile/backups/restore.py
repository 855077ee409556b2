"""Restore the whole ledger, or one customer, to a backup point (seed 004 "备份恢复流程").

The work is set-based and chunked: one query finds the customers whose current row
differs from the snapshot, then each chunk of ``chunk_size`` customers is decided by the
domain (``plan_customer_restore``) and written in one transaction with one statement per
table. Every renamed customer gets what any name change gets (history, completed
application, audit entry, outbox event with a higher profile version), so external
systems converge on the restored names. A failure part-way leaves the committed chunks
restored; running the restore again finishes the rest (only differing rows are touched).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime

from libs.kit.errors import AppError
from libs.kit.logging import get_logger
from libs.kit.progress import Progress, no_progress
from services.profile.backups.restore_report import RestoreConflict, RestoreReport, RestoreTally
from services.profile.backups.restore_writes import write_restore_steps
from services.profile.backups.service import BackupService
from services.profile.domain.errors import BackupNotFound, CustomerCodeExists, ProfileNotFound
from services.profile.domain.model import Customer
from services.profile.domain.restore import (
    BackupKind,
    RestoreStep,
    plan_customer_restore,
    plan_removal,
)
from services.profile.shared.audit import AuditEvent, actor_entry
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.ports import ProfileUnitOfWork, RestoreLock, UnitOfWorkFactory
from services.profile.shared.results import Actor

log = get_logger(__name__)


@dataclass(frozen=True)
class RestoreService:
    uow_factory: UnitOfWorkFactory
    lock: RestoreLock
    metrics: LedgerMetrics
    _: KW_ONLY
    chunk_size: int = 1_000
    max_differences: int = 1_000
    clock: Clock = utc_now

    @property
    def _backups(self) -> BackupService:
        # Seed 004 "重要操作即时备份": a whole-ledger restore first takes a backup point of the ledger as it is.
        return BackupService(self.uow_factory, self.metrics, self.clock)

    async def restore(
        self,
        backup_id: str,
        customer_id: str | None,
        dry_run: bool,
        actor: Actor,
        progress: Progress = no_progress,
    ) -> RestoreReport:
        """Restore the ledger (or one customer) to a backup point; ``progress`` hears of each chunk's customers."""
        started = time.perf_counter()
        mode = "dry_run" if dry_run else ("customer" if customer_id else "ledger")
        safety_backup_id: str | None = None
        try:
            await self._check(backup_id, customer_id)
            if dry_run:
                tally = await self._run(backup_id, customer_id, actor, progress, write=False)
            else:
                async with self.lock.hold():
                    if customer_id is None:  # under the lock: no other restore runs between the two
                        safety = await self._backups.create(
                            BackupKind.PRE_RESTORE, f"before restore from {backup_id}", actor
                        )
                        safety_backup_id = safety.backup_id
                    tally = await self._run(backup_id, customer_id, actor, progress, write=True)
        except AppError as exc:
            self.metrics.restores.labels(mode, exc.code).inc()
            log.warning("restore_failed", backup_id=backup_id, customer_id=customer_id, code=exc.code, error=exc.detail)
            raise
        duration = time.perf_counter() - started
        report = RestoreReport(
            backup_id=backup_id,
            customer_id=customer_id,
            dry_run=dry_run,
            customers_changed=sum(tally.actions.values()),
            actions=dict(tally.actions),
            name_changes=tally.name_changes,
            differences=tally.differences,
            truncated=tally.truncated,
            duration_ms=round(duration * 1000, 1),
            conflicts=list(tally.conflicts.values())[: self.max_differences],
            safety_backup_id=safety_backup_id,
        )
        if not dry_run:
            await self._audit_summary(report, actor)
            for action, count in tally.actions.items():
                self.metrics.restored_customers.labels(action).inc(count)
        self.metrics.restores.labels(mode, "ok").inc()
        self.metrics.restore_duration.observe(duration)
        log.info(
            "restore_done",
            backup_id=backup_id,
            customer_id=customer_id,
            dry_run=dry_run,
            changed=report.customers_changed,
            name_changes=report.name_changes,
            conflicts=len(tally.conflicts),
            duration_ms=report.duration_ms,
        )
        return report

    async def _check(self, backup_id: str, customer_id: str | None) -> None:
        async with self.uow_factory() as uow:
            if await uow.backups.get(backup_id) is None:
                raise BackupNotFound(f"backup {backup_id} not found")
            if customer_id is not None and not await uow.backups.contains(backup_id, customer_id):
                raise ProfileNotFound(f"customer {customer_id} is not in backup {backup_id}")

    async def _run(
        self, backup_id: str, customer_id: str | None, actor: Actor, progress: Progress, *, write: bool
    ) -> RestoreTally:
        tally = RestoreTally(self.max_differences)
        after: str | None = None
        while True:
            async with self.uow_factory() as uow:
                ids = await uow.backups.differing_ids(backup_id, customer_id, after, self.chunk_size)
                steps = (
                    await self._restore_chunk(
                        uow, backup_id, ids, actor, tally, write=write, refuse_conflicts=customer_id is not None
                    )
                    if ids
                    else []
                )
            tally.add(steps, in_backup=True)
            progress(len(ids))
            if len(ids) < self.chunk_size:
                break
            after = ids[-1]
        if customer_id is not None:
            return tally
        after = None
        while True:  # customers created after the backup point
            async with self.uow_factory() as uow:
                ids = await uow.backups.live_not_in_backup(backup_id, after, self.chunk_size)
                steps = await self._remove_chunk(uow, backup_id, ids, actor, write=write) if ids else []
            tally.add(steps, in_backup=False)
            progress(len(ids))
            if len(ids) < self.chunk_size:
                break
            after = ids[-1]
        if write and tally.conflicts:  # later chunks may have freed the codes they wanted
            retry = sorted(tally.conflicts)
            tally.conflicts = {}
            for start in range(0, len(retry), self.chunk_size):
                async with self.uow_factory() as uow:
                    chunk = retry[start : start + self.chunk_size]
                    steps = await self._restore_chunk(uow, backup_id, chunk, actor, tally, write=write)
                tally.add(steps, in_backup=True)
        return tally

    async def _restore_chunk(
        self,
        uow: ProfileUnitOfWork,
        backup_id: str,
        ids: Sequence[str],
        actor: Actor,
        tally: RestoreTally,
        *,
        write: bool,
        refuse_conflicts: bool = False,
    ) -> list[RestoreStep]:
        """``refuse_conflicts``: a code conflict is 409 (a one-customer restore), not a line in the report."""
        now = self.clock()
        current = await uow.customers.get_many(ids, for_update=write)
        snapshots = await uow.backups.snapshots(backup_id, ids)
        purged = await uow.customers.purged_versions([i for i in ids if i not in current])
        steps = [
            step
            for customer_id in ids
            if (
                step := plan_customer_restore(
                    current.get(customer_id), snapshots[customer_id], purged.get(customer_id), now, by=actor.actor_id
                )
            )
            is not None
        ]
        conflicts = await _code_conflicts(uow, steps)
        if conflicts:
            if refuse_conflicts:
                conflict = conflicts[0]
                raise CustomerCodeExists(
                    f"customer code {conflict.customer_code} of customer {conflict.customer_id} in the backup "
                    f"is held by customer {conflict.held_by} now"
                )
            tally.conflicts.update({c.customer_id: c for c in conflicts})
            held = {c.customer_id for c in conflicts}
            steps = [step for step in steps if step.customer_id not in held]
        if write and steps:
            await write_restore_steps(uow, steps, backup_id, actor)
        return steps

    async def _remove_chunk(
        self, uow: ProfileUnitOfWork, backup_id: str, ids: Sequence[str], actor: Actor, *, write: bool
    ) -> list[RestoreStep]:
        now = self.clock()
        current = await uow.customers.get_many(ids, for_update=write)
        steps = [step for customer_id in ids if (step := _removal(current.get(customer_id), now, actor)) is not None]
        if write and steps:
            await write_restore_steps(uow, steps, backup_id, actor)
        return steps

    async def _audit_summary(self, report: RestoreReport, actor: Actor) -> None:
        async with self.uow_factory() as uow:
            await uow.audit.add(
                actor_entry(
                    AuditEvent.BACKUP_RESTORED,
                    "restore from backup" if report.customer_id is None else "restore one customer from backup",
                    actor,
                    customer_id=report.customer_id,
                    new_value={
                        "backupId": report.backup_id,
                        "customersChanged": report.customers_changed,
                        "actions": report.actions,
                        "nameChanges": report.name_changes,
                        "durationMs": report.duration_ms,
                    },
                ),
                self.clock(),
            )
            await uow.commit()


def _removal(current: Customer | None, now: datetime, actor: Actor) -> RestoreStep | None:
    return None if current is None else plan_removal(current, now, by=actor.actor_id)


async def _code_conflicts(uow: ProfileUnitOfWork, steps: Sequence[RestoreStep]) -> list[RestoreConflict]:
    """Steps whose code another customer holds and keeps (not one of these steps giving it up)."""
    kept = {step.customer_id: step for step in steps}
    conflicts: list[RestoreConflict] = []
    # Read once: a later round wants only codes the first wanted (fewer steps), and nothing is written between.
    holders = await uow.customers.code_holders(list(_wanted_codes(steps)))
    while True:
        wanted = _wanted_codes(kept.values())
        found = [
            RestoreConflict(customer_id=customer_id, customer_code=code, held_by=holder)
            for code, customer_id in wanted.items()
            if (holder := holders.get(code)) is not None
            and holder != customer_id
            and not (holder in kept and kept[holder].after.customer_code != code)
        ]
        if not found:
            return conflicts
        conflicts.extend(found)
        for conflict in found:  # a step left out keeps its code: look again at who wanted that one
            del kept[conflict.customer_id]


def _wanted_codes(steps: Iterable[RestoreStep]) -> dict[str, str]:
    """Code -> the customer whose step takes it (a code it does not hold now)."""
    return {
        s.after.customer_code: s.customer_id
        for s in steps
        if s.before is None or s.before.customer_code != s.after.customer_code
    }

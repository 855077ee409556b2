"""Backup points of the ledger (seed 004 "自动备份"): on demand, daily, and expired after retention."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from libs.kit.logging import get_logger
from services.profile.domain.errors import BackupNotFound
from services.profile.domain.lookup import found
from services.profile.domain.restore import BackupKind
from services.profile.shared.audit import AuditEvent, actor_entry
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.pagination import Keyset, Page, time_key
from services.profile.shared.ports import BackupPoint, UnitOfWorkFactory
from services.profile.shared.results import Actor

log = get_logger(__name__)


def new_backup_id(now: datetime) -> str:
    return f"BK-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class BackupService:
    uow_factory: UnitOfWorkFactory
    metrics: LedgerMetrics
    clock: Clock = utc_now

    async def create(self, kind: BackupKind, label: str | None, actor: Actor) -> BackupPoint:
        """Copy the whole ledger, recycle bin included, in one transaction."""
        now = self.clock()
        started = time.perf_counter()
        async with self.uow_factory() as uow:
            point = await uow.backups.take(new_backup_id(now), kind, label, actor.actor_id, now)
            await uow.audit.add(
                actor_entry(
                    AuditEvent.BACKUP_CREATED,
                    f"{kind.value} backup",
                    actor,
                    new_value={
                        "backupId": point.backup_id,
                        "kind": kind.value,
                        "customerCount": point.customer_count,
                        "deletedCount": point.deleted_count,
                    },
                ),
                now,
            )
            await uow.commit()
        duration = time.perf_counter() - started
        self.metrics.backups.labels(kind.value).inc()
        self.metrics.backup_duration.observe(duration)
        log.info(
            "backup_created",
            backup_id=point.backup_id,
            kind=kind.value,
            customers=point.customer_count,
            duration_ms=round(duration * 1000, 1),
        )
        return point

    async def get(self, backup_id: str) -> BackupPoint:
        async with self.uow_factory() as uow:
            point = await uow.backups.get(backup_id)
        return found(point, BackupNotFound(f"backup {backup_id} not found"))

    async def page(self, cursor: str | None, limit: int | None) -> Page[BackupPoint]:
        """Newest first."""
        keyset = Keyset(time_key, cursor, limit, "backups")
        async with self.uow_factory() as uow:
            rows = await uow.backups.list_page(keyset.after, keyset.fetch)
        return keyset.page(rows, lambda p: [p.created_at.isoformat(), p.backup_id])

    async def take_daily(self, actor: Actor) -> BackupPoint | None:
        """The scheduled backup of today (UTC), unless one was already taken."""
        async with self.uow_factory() as uow:
            existing = await uow.backups.latest(BackupKind.SCHEDULED, start_of_day(self.clock()))
        if existing is not None:
            return None
        return await self.create(BackupKind.SCHEDULED, "daily", actor)

    async def expire(self, retention: timedelta, keep_newest: int, actor: Actor) -> list[str]:
        """Drop backup points older than ``retention``, always keeping the ``keep_newest`` latest."""
        now = self.clock()
        async with self.uow_factory() as uow:
            expired = await uow.backups.expired(now - retention, keep_newest)
        removed: list[str] = []
        for point in expired:
            async with self.uow_factory() as uow:
                await uow.backups.delete(point.backup_id)
                await uow.audit.add(
                    actor_entry(
                        AuditEvent.BACKUP_EXPIRED,
                        "backup retention",
                        actor,
                        old_value={
                            "backupId": point.backup_id,
                            "kind": point.kind.value,
                            "createdAt": point.created_at.isoformat(),
                            "customerCount": point.customer_count,
                        },
                    ),
                    now,
                )
                await uow.commit()
            removed.append(point.backup_id)
        return removed

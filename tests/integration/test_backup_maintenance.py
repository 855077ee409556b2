"""The maintenance task (a daily cron job): partitions ahead, purge, daily backup, retention, key expiry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import asyncpg

from libs.kit.db import sqlalchemy_url
from services.profile.backups.maintenance import MaintenanceTask
from services.profile.shared.ledger_settings import LedgerSettings
from tests.auth_support import auth_env
from tests.ledger_support import run_maintenance, seed_customers


async def history_partitions(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'profile.name_change_history'::regclass"
    )
    return count


async def test_partitions_are_created_ahead(database_url: str, db: asyncpg.Connection) -> None:
    before = await history_partitions(db)  # default + current month + 3 ahead, from the migration
    report = await run_maintenance(
        database_url, MaintenanceTask.PARTITIONS, settings=LedgerSettings(history_partitions_ahead=6)
    )
    assert report.partitions_created == 3
    assert await history_partitions(db) == before + 3
    again = await run_maintenance(
        database_url, MaintenanceTask.PARTITIONS, settings=LedgerSettings(history_partitions_ahead=6)
    )
    assert again.partitions_created == 0


async def test_recycle_bin_is_purged_after_retention(database_url: str, db: asyncpg.Connection) -> None:
    await seed_customers(db, 4)
    await db.execute(
        "UPDATE profile.customer_profiles SET deleted_at = now() - interval '31 days', version = 7 "
        "WHERE customer_id IN ('C000001', 'C000002')"
    )
    await db.execute(
        "UPDATE profile.customer_profiles SET deleted_at = now() - interval '29 days' WHERE customer_id = 'C000003'"
    )
    report = await run_maintenance(
        database_url, MaintenanceTask.PURGE, settings=LedgerSettings(recycle_bin_retention_days=30, purge_batch_size=1)
    )
    assert report.customers_purged == 2
    remaining = await db.fetch("SELECT customer_id FROM profile.customer_profiles ORDER BY 1")
    assert [r["customer_id"] for r in remaining] == ["C000003", "C000004"]
    tombstones = await db.fetch("SELECT customer_id, last_version FROM profile.purged_customers ORDER BY 1")
    assert [(t["customer_id"], t["last_version"]) for t in tombstones] == [("C000001", 7), ("C000002", 7)]
    purged = await db.fetch(
        "SELECT actor_id, new_value::text AS new FROM profile.audit_logs WHERE event_type = 'CUSTOMER_PURGED'"
    )
    assert [p["actor_id"] for p in purged] == ["maintenance", "maintenance"]
    assert "138" not in " ".join(p["new"] for p in purged)  # no phone numbers in the log


async def test_daily_backup_once_a_day_and_retention(database_url: str, db: asyncpg.Connection) -> None:
    await seed_customers(db, 3)
    first = await run_maintenance(database_url, MaintenanceTask.BACKUP)
    assert first.backup_taken is not None
    assert (await run_maintenance(database_url, MaintenanceTask.BACKUP)).backup_taken is None
    kind, count = await db.fetchrow("SELECT kind, customer_count FROM profile.backups")
    assert (kind, count) == ("scheduled", 3)

    # Three old points and today's: retention of 30 days, keeping at least 2.
    for days in (40, 50, 60):
        await db.execute(
            "INSERT INTO profile.backups (backup_id, kind, created_by, created_at, customer_count, deleted_count) "
            "VALUES ($1, 'manual', 'x', now() - make_interval(days => $2), 0, 0)",
            f"BK-old-{days}",
            days,
        )
    await db.execute("INSERT INTO profile.backup_customers SELECT 'BK-old-60', * FROM profile.customer_profiles")
    report = await run_maintenance(
        database_url,
        MaintenanceTask.BACKUP_RETENTION,
        settings=LedgerSettings(backup_retention_days=30, backup_keep_min=2),
    )
    assert report.backups_expired == ["BK-old-60", "BK-old-50"]
    left = await db.fetch("SELECT backup_id FROM profile.backups ORDER BY created_at")
    assert [r["backup_id"] for r in left] == ["BK-old-40", first.backup_taken]
    assert await db.fetchval("SELECT count(*) FROM profile.backup_customers WHERE backup_id = 'BK-old-60'") == 0
    expired = await db.fetchval("SELECT count(*) FROM profile.audit_logs WHERE event_type = 'BACKUP_EXPIRED'")
    assert expired == 2


async def test_expired_idempotency_keys_are_deleted(database_url: str, db: asyncpg.Connection) -> None:
    await db.execute(
        """
        INSERT INTO profile.idempotency_keys (scope, idempotency_key, request_hash, state, created_at, expires_at)
        SELECT 'POST /v1/customers', 'k' || g, repeat('0', 64), 'completed', now(),
               now() + CASE WHEN g % 2 = 0 THEN interval '-1 hour' ELSE interval '1 hour' END
        FROM generate_series(1, 10) g
        """
    )
    report = await run_maintenance(database_url, MaintenanceTask.IDEMPOTENCY_KEYS)
    assert report.idempotency_keys_deleted == 5
    assert await db.fetchval("SELECT count(*) FROM profile.idempotency_keys") == 5


def test_the_cli_runs_every_task_as_a_cron_job_would(database_url: str) -> None:
    env = {
        **os.environ,
        "PROFILE_DB_URL": sqlalchemy_url(database_url),
        "PROFILE_LOG_LEVEL": "WARNING",
        **auth_env(),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.profile", "maintenance"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failedTasks"] == []
    assert report["backupTaken"].startswith("BK-")
    assert report["partitionsCreated"] == 0  # the migration already made them

"""Backups that protect themselves (seed 004 "重要操作即时备份"): a backup point is taken by itself before every
whole-ledger restore and before a purge removes anyone; with it, the restore or the purge can be undone."""

from __future__ import annotations

import asyncpg

from services.profile.backups.maintenance import MaintenanceTask
from services.profile.shared.ledger_settings import LedgerSettings
from tests.ledger_support import Client, patch_customer, restore, run_maintenance, seed_customers


async def _points(db: asyncpg.Connection, kind: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM profile.backups WHERE kind = $1 ORDER BY created_at", kind
    )
    return rows


async def _name(db: asyncpg.Connection, customer_id: str) -> str:
    name: str = await db.fetchval(
        "SELECT customer_name FROM profile.customer_profiles WHERE customer_id = $1", customer_id
    )
    return name


async def test_a_whole_ledger_restore_takes_a_backup_point_first_and_it_undoes_the_restore(
    client: Client, db: asyncpg.Connection
) -> None:
    await seed_customers(db, 3)
    response = await client.post("/v1/backups", json={"label": "before the renames"})
    assert response.status_code == 201, response.text
    point = response.json()["backupId"]
    assert (await patch_customer(client, "C000001", {"customerName": "改名一"}, 1)).status_code == 200

    # Neither a dry run nor a one-customer restore takes one.
    await restore(client, point, dryRun=True)
    await restore(client, point, dryRun=False, customerId="C000002")
    assert await _points(db, "pre_restore") == []

    report = await restore(client, point, dryRun=False)

    (safety,) = await _points(db, "pre_restore")
    assert report["safetyBackupId"] == safety["backup_id"]
    assert safety["label"] == f"before restore from {point}"
    assert safety["customer_count"] == 3
    # The point holds the ledger as it was before the restore: the rename is in it.
    held = await db.fetchval(
        "SELECT customer_name FROM profile.backup_customers WHERE backup_id = $1 AND customer_id = 'C000001'",
        safety["backup_id"],
    )
    assert held == "改名一"
    assert await _name(db, "C000001") == "客户1"
    created = await db.fetchval(
        "SELECT count(*) FROM profile.audit_logs WHERE event_type = 'BACKUP_CREATED' AND new_value->>'backupId' = $1",
        safety["backup_id"],
    )
    assert created == 1

    # The restore is undone by restoring its safety point (which takes one of its own).
    undo = await restore(client, safety["backup_id"], dryRun=False)
    assert undo["customersChanged"] == 1
    assert await _name(db, "C000001") == "改名一"
    assert len(await _points(db, "pre_restore")) == 2


async def test_a_purge_takes_a_backup_point_before_anyone_goes(database_url: str, db: asyncpg.Connection) -> None:
    await seed_customers(db, 4)
    settings = LedgerSettings(recycle_bin_retention_days=30, purge_batch_size=1)
    # Nothing due: no backup point.
    report = await run_maintenance(database_url, MaintenanceTask.PURGE, settings=settings)
    assert (report.customers_purged, report.pre_purge_backup) == (0, None)
    assert await _points(db, "pre_purge") == []

    await db.execute(
        "UPDATE profile.customer_profiles SET deleted_at = now() - interval '31 days' "
        "WHERE customer_id IN ('C000001', 'C000002')"
    )
    report = await run_maintenance(database_url, MaintenanceTask.PURGE, settings=settings)

    assert report.customers_purged == 2
    (safety,) = await _points(db, "pre_purge")
    assert report.pre_purge_backup == safety["backup_id"]
    assert (safety["customer_count"], safety["deleted_count"], safety["created_by"]) == (4, 2, "maintenance")
    held = await db.fetch(
        "SELECT customer_id FROM profile.backup_customers WHERE backup_id = $1 ORDER BY 1", safety["backup_id"]
    )
    assert [r["customer_id"] for r in held] == ["C000001", "C000002", "C000003", "C000004"]
    gone = await db.fetchval(
        "SELECT count(*) FROM profile.customer_profiles WHERE customer_id IN ('C000001', 'C000002')"
    )
    assert gone == 0

"""Backup points and restores through the API on real PostgreSQL (seed 004)."""

from __future__ import annotations

import json
import zlib
from typing import Any

import asyncpg
import pytest

from services.profile.backups.maintenance import MaintenanceTask
from tests.auth_support import DEFAULT_SUBJECT
from tests.ledger_support import (
    Client,
    assert_problem,
    create_customer,
    patch_customer,
    restore,
    run_maintenance,
    seed_customers,
)

COMPARED = "customer_name, contact_digest, account_type, status, deleted_at IS NULL"  # the digest: seals differ


@pytest.fixture
def profile_env() -> dict[str, str]:
    # Small chunks, so a restore of a dozen customers crosses several transactions.
    return {"PROFILE_LEDGER_RESTORE_CHUNK_SIZE": "3"}


async def backup(client: Client, label: str | None = None) -> dict[str, Any]:
    response = await client.post("/v1/backups", json={"label": label} if label else {})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def ledger_differs_from(db: asyncpg.Connection, backup_id: str) -> list[str]:
    """Ids whose row differs from the backup point: content, recycle-bin state, or a live row missing in it."""
    rows = await db.fetch(
        f"""
        SELECT coalesce(b.customer_id, c.customer_id) AS customer_id
        FROM (SELECT * FROM profile.backup_customers WHERE backup_id = $1) b
        FULL JOIN profile.customer_profiles c ON c.customer_id = b.customer_id
        WHERE CASE
            WHEN b.customer_id IS NULL THEN c.deleted_at IS NULL
            WHEN c.customer_id IS NULL THEN true
            ELSE ({_row("b")}) IS DISTINCT FROM ({_row("c")})
        END
        ORDER BY 1
        """,
        backup_id,
    )
    return [r["customer_id"] for r in rows]


def _row(alias: str) -> str:
    return ", ".join(f"{alias}.{column}" for column in COMPARED.split(", "))


async def changed_ledger(client: Client, db: asyncpg.Connection) -> None:
    """After the backup: a rename, a phone change, a deletion and a new customer."""
    assert (await patch_customer(client, "C000001", {"customerName": "改名一"}, 1)).status_code == 200
    assert (await patch_customer(client, "C000002", {"contactPhone": "+86 139 9999 0000"}, 1)).status_code == 200
    assert (await client.delete("/v1/customers/C000003")).status_code == 200
    await create_customer(client, "C000099", "新客户")


async def test_backup_points_are_listed_newest_first(client: Client, db: asyncpg.Connection) -> None:
    await seed_customers(db, 4)
    assert (await client.delete("/v1/customers/C000004")).status_code == 200
    first = await backup(client, "first")
    second = await backup(client)
    assert (first["customerCount"], first["deletedCount"], first["kind"], first["label"]) == (4, 1, "manual", "first")
    assert first["createdBy"] == DEFAULT_SUBJECT

    page = (await client.get("/v1/backups", params={"limit": 1})).json()
    rest = (await client.get("/v1/backups", params={"limit": 1, "cursor": page["nextCursor"]})).json()
    assert [b["backupId"] for b in page["items"] + rest["items"]] == [second["backupId"], first["backupId"]]
    assert (await client.get(f"/v1/backups/{first['backupId']}")).json() == first
    assert_problem(await client.get("/v1/backups/BK-missing"), 404, "BACKUP_NOT_FOUND")
    assert_problem(await client.post("/v1/backups", json={"label": "x" * 201}), 422, "VALIDATION")
    assert_problem(await client.post("/v1/backups", json={"when": "now"}), 422, "VALIDATION")
    copied = await db.fetchval("SELECT count(*) FROM profile.backup_customers WHERE backup_id=$1", first["backupId"])
    assert copied == 4


async def test_dry_run_lists_the_differences_and_writes_nothing(client: Client, db: asyncpg.Connection) -> None:
    await seed_customers(db, 5)
    point = await backup(client)
    await changed_ledger(client, db)
    before = await db.fetch("SELECT customer_id, version, customer_name FROM profile.customer_profiles ORDER BY 1")
    outbox_before = await db.fetchval("SELECT count(*) FROM profile.outbox")

    report = await restore(client, point["backupId"], dryRun=True)

    assert report["dryRun"] is True
    assert report["actions"] == {"update": 2, "undelete": 1, "move_to_recycle_bin": 1}
    assert (report["customersChanged"], report["nameChanges"], report["truncated"]) == (4, 1, False)
    differences = {d["customerId"]: d for d in report["differences"]}
    assert differences["C000001"]["changedFields"] == ["customerName"]
    assert (differences["C000001"]["currentName"], differences["C000001"]["backupName"]) == ("改名一", "客户1")
    assert differences["C000002"]["changedFields"] == ["contactPhone"]
    assert differences["C000003"]["action"] == "undelete"
    assert (differences["C000099"]["action"], differences["C000099"]["backupName"]) == ("move_to_recycle_bin", None)
    after = await db.fetch("SELECT customer_id, version, customer_name FROM profile.customer_profiles ORDER BY 1")
    assert after == before
    assert await db.fetchval("SELECT count(*) FROM profile.outbox") == outbox_before
    assert await db.fetchval("SELECT count(*) FROM profile.audit_logs WHERE event_type='BACKUP_RESTORED'") == 0


async def test_restore_of_the_whole_ledger_goes_through_the_domain(client: Client, db: asyncpg.Connection) -> None:
    await seed_customers(db, 12)
    point = await backup(client)
    await changed_ledger(client, db)
    for i in range(4, 11):  # more renames, spread over several chunks
        assert (await patch_customer(client, f"C{i:06d}", {"customerName": f"新名{i}"}, 1)).status_code == 200
    assert await ledger_differs_from(db, point["backupId"]) != []

    report = await restore(client, point["backupId"], dryRun=False)

    assert report["actions"] == {"update": 9, "undelete": 1, "move_to_recycle_bin": 1}
    assert report["nameChanges"] == 8
    assert await ledger_differs_from(db, point["backupId"]) == []
    profile = (await client.get("/v1/customers/C000001")).json()
    assert (profile["customerName"], profile["version"]) == ("客户1", 3)
    assert (await client.get("/v1/customers/C000003")).json()["customerName"] == "客户3"
    assert [c["customerId"] for c in (await client.get("/v1/recycle-bin")).json()["items"]] == ["C000099"]

    history = (await client.get("/v1/customers/C000001/name-history")).json()
    assert [(h["oldName"], h["newName"], h["profileVersion"]) for h in history] == [
        ("改名一", "客户1", 3),
        ("客户1", "改名一", 2),
    ]
    assert history[0]["changeReason"] == f"restored from backup {point['backupId']}"
    restored_events = await db.fetch(
        "SELECT o.payload::text AS payload FROM profile.outbox o "
        "JOIN profile.name_change_applications a ON a.application_id = o.payload->>'applicationId' "
        "WHERE a.origin = 'backup_restore' ORDER BY o.seq"
    )
    payloads = [json.loads(r["payload"]) for r in restored_events]
    assert len(payloads) == 8
    assert {(p["customerId"], p["newName"], p["profileVersion"]) for p in payloads} >= {("C000001", "客户1", 3)}
    completed = await db.fetchval(
        "SELECT count(*) FROM profile.name_change_applications WHERE origin='backup_restore' AND status='completed'"
    )
    assert completed == 8
    audit = await db.fetch(
        "SELECT new_value::text AS new FROM profile.audit_logs WHERE event_type='CUSTOMER_RESTORED_FROM_BACKUP'"
    )
    assert len(audit) == 11
    assert "139 9999 0000" not in " ".join(r["new"] for r in audit)
    summary = json.loads(
        await db.fetchval("SELECT new_value::text FROM profile.audit_logs WHERE event_type='BACKUP_RESTORED'")
    )
    assert (summary["backupId"], summary["customersChanged"], summary["nameChanges"]) == (point["backupId"], 11, 8)

    again = await restore(client, point["backupId"], dryRun=False)
    assert (again["customersChanged"], again["nameChanges"]) == (0, 0)


async def test_restore_of_one_customer_touches_only_that_customer(client: Client, db: asyncpg.Connection) -> None:
    await seed_customers(db, 5)
    point = await backup(client)
    await changed_ledger(client, db)

    report = await restore(client, point["backupId"], customerId="C000003")

    assert (report["customerId"], report["actions"]) == ("C000003", {"undelete": 1})
    assert (await client.get("/v1/customers/C000003")).status_code == 200
    assert (await client.get("/v1/customers/C000001")).json()["customerName"] == "改名一"
    assert (await client.get("/v1/customers/C000099")).status_code == 200
    missing = await client.post(f"/v1/backups/{point['backupId']}/restore", json={"customerId": "C000099"})
    assert_problem(missing, 404, "PROFILE_NOT_FOUND")
    assert_problem(await client.post("/v1/backups/BK-missing/restore", json={}), 404, "BACKUP_NOT_FOUND")
    assert_problem(
        await client.post(f"/v1/backups/{point['backupId']}/restore", json={"dryRun": "yes"}), 422, "VALIDATION"
    )


async def test_restore_writes_a_purged_customer_again_above_its_old_versions(
    client: Client, db: asyncpg.Connection, database_url: str
) -> None:
    await create_customer(client, "C1")
    assert (await patch_customer(client, "C1", {"customerName": "李四"}, 1)).status_code == 200
    point = await backup(client)
    assert (await patch_customer(client, "C1", {"customerName": "王五"}, 2)).status_code == 200
    assert (await client.delete("/v1/customers/C1")).status_code == 200  # version 4
    await db.execute("UPDATE profile.customer_profiles SET deleted_at = now() - interval '90 days'")
    await run_maintenance(database_url, MaintenanceTask.PURGE)
    assert await db.fetchval("SELECT last_version FROM profile.purged_customers WHERE customer_id='C1'") == 4

    report = await restore(client, point["backupId"], customerId="C1")

    assert report["actions"] == {"recreate": 1}
    profile = (await client.get("/v1/customers/C1")).json()
    assert (profile["customerName"], profile["version"]) == ("李四", 5)
    event = json.loads(await db.fetchval("SELECT payload::text FROM profile.outbox ORDER BY seq DESC LIMIT 1"))
    assert (event["newName"], event["profileVersion"]) == ("李四", 5)
    assert await db.fetchval("SELECT count(*) FROM profile.purged_customers") == 0


async def test_one_restore_at_a_time(client: Client, database_url: str) -> None:
    await create_customer(client, "C1")
    point = await backup(client)
    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", zlib.crc32(b"profile-ledger-restore"))
        busy = await client.post(f"/v1/backups/{point['backupId']}/restore", json={})
        assert assert_problem(busy, 409, "RESTORE_IN_PROGRESS")["retryable"] is True
        # A dry run writes nothing and needs no lock.
        assert (await client.post(f"/v1/backups/{point['backupId']}/restore", json={"dryRun": True})).status_code == 200
    finally:
        await holder.close()
    assert (await client.post(f"/v1/backups/{point['backupId']}/restore", json={})).status_code == 200

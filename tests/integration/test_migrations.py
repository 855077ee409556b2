"""Migrations build both schemas from nothing and can be rolled back and re-applied."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from migrations.runner import downgrade, upgrade_all

EXPECTED = {
    "profile": {
        "customer_profiles",
        "name_change_applications",
        "name_change_history",
        "audit_logs",
        "outbox",
        "outbox_shards",
        "outbox_relay_instances",
        # the customer ledger (profile_0003)
        "purged_customers",
        "backups",
        "backup_customers",
        "idempotency_keys",
        # every version of every customer (profile_0005)
        "customer_versions",
        # failed and refused updates the admins are not yet told of (profile_0006)
        "admin_signals",
    },
    "sync": {
        "external_sync_records",
        "external_sync_attempts",
        "customer_sync_state",
        "dead_letters",
        "admin_actions",
        # customer notifications (sync_0003)
        "notification_records",
        "notification_attempts",
        # status counts kept by triggers, maintenance runs (sync_0004)
        "record_status_counts",
        "record_status_deltas",
        "maintenance_runs",
        # messages the connector can never process (sync_0006)
        "unprocessable_messages",
        # admin notifications per cause and window, and what they counted (sync_0007)
        "admin_notifications",
        "admin_occurrences",
    },
}


async def tables(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('profile', 'sync') "
            "AND tablename NOT LIKE 'name_change_history_%' AND tablename <> 'alembic_version'"
        )
        partitions = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('profile.name_change_history')"
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {"profile": set(), "sync": set()}
    for row in rows:
        found[row["schemaname"]].add(row["tablename"])
    found["profile_partitions"] = {str(partitions)}
    return found


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    url = empty_database_url
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        await loop.run_in_executor(pool, upgrade_all, url)
        first = await tables(url)
        assert first["profile"] == EXPECTED["profile"]
        assert first["sync"] == EXPECTED["sync"]
        # default partition plus the current month and three ahead
        assert first["profile_partitions"] == {"5"}
        for area in ("sync", "profile"):
            await loop.run_in_executor(pool, downgrade, url, area)
        emptied = await tables(url)
        assert emptied["profile"] == set()
        assert emptied["sync"] == set()
        await loop.run_in_executor(pool, upgrade_all, url)
        assert (await tables(url))["profile"] == EXPECTED["profile"]


async def test_profile_0005_gives_existing_customers_a_code_their_creator_and_a_baseline_version(
    empty_database_url: str,
) -> None:
    """Customers written before seed 004's record keep working: code = id, creator from the log, one version."""
    url = empty_database_url
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        await loop.run_in_executor(pool, upgrade_all, url)
        await loop.run_in_executor(pool, downgrade, url, "profile", "profile_0004")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO profile.customer_profiles (customer_id, customer_name, account_type, status, version,"
                " created_at, updated_at) VALUES ('OLD1', '张三', 'residential', 'active', 3, now(), now()),"
                " ('OLD2', '李四', 'commercial', 'active', 1, now(), now())"
            )
            await conn.execute(
                "INSERT INTO profile.audit_logs (event_type, actor_id, customer_id, operation, event_time)"
                " VALUES ('CUSTOMER_CREATED', 'alice', 'OLD1', 'create customer', now())"
            )
        finally:
            await conn.close()
        await loop.run_in_executor(pool, upgrade_all, url)
        conn = await asyncpg.connect(url)
        try:
            live = await conn.fetch(
                "SELECT customer_id, customer_code, created_by, credit_limit::text AS credit, change_kind"
                " FROM profile.customer_profiles ORDER BY 1"
            )
            assert [tuple(r) for r in live] == [
                ("OLD1", "OLD1", "alice", "0.00", "baseline"),
                ("OLD2", "OLD2", None, "0.00", "baseline"),
            ]
            versions = await conn.fetch(
                "SELECT customer_id, version, change_kind FROM profile.customer_versions ORDER BY 1"
            )
            assert [tuple(r) for r in versions] == [("OLD1", 3, "baseline"), ("OLD2", 1, "baseline")]
            # From now on every version is kept, and a code is unique.
            await conn.execute("UPDATE profile.customer_profiles SET version = 4 WHERE customer_id = 'OLD1'")
            assert await conn.fetchval("SELECT count(*) FROM profile.customer_versions") == 3
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    "UPDATE profile.customer_profiles SET customer_code = 'OLD1' WHERE customer_id = 'OLD2'"
                )
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute("UPDATE profile.customer_profiles SET credit_limit = -1 WHERE customer_id = 'OLD2'")
        finally:
            await conn.close()

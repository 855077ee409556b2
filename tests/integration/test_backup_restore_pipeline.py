"""Seed 004 end to end: back up 10,000 customers, rename 1,000, restore, and the external systems follow.

The profile API runs in-process; the relay, the sync-connector and the stub CRM/CMS/CSS run
as real processes on the test's PostgreSQL and Kafka, as in production.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from libs.devstack.topology import SYSTEMS, Role
from tests.ledger_support import Client, patch_customer, seed_customers
from tests.polling import answered, eventually
from tests.system_support import topology_for_tests

CUSTOMERS = int(os.environ.get("LEDGER_E2E_CUSTOMERS", "10000"))
RENAMED = CUSTOMERS // 10
COMPARED = "customer_name, contact_digest, account_type, status, deleted_at IS NULL"  # the digest: seals differ


@pytest.fixture
def pipeline(database_url: str, kafka_bootstrap: str, topic: str, artifacts_dir: Path) -> Iterator[str]:
    """Relay, connector and stubs as processes; yields the stubs' base URL."""
    processes = {"stubs": Role.STUBS, "relay": Role.RELAY, "connector": Role.CONNECTOR}
    logs = artifacts_dir / "ledger-restore-e2e"
    overrides = {"relay": {"PROFILE_LOG_LEVEL": "WARNING"}, "connector": {"CONNECTOR_LOG_LEVEL": "WARNING"}}
    topology = topology_for_tests(database_url, kafka_bootstrap, topic, logs, processes=processes, overrides=overrides)
    with topology.start() as system:
        yield system.url("stubs")


async def held_by_systems(http: httpx.AsyncClient, stubs_url: str) -> dict[str, dict[str, dict[str, Any]]]:
    """What each external system holds now: customer id -> {profileVersion, customerName}."""
    held = {}
    for system in SYSTEMS:
        held[system] = (await http.get(f"{stubs_url}/_customers", params={"system": system})).json()
    return held


async def rename_through_the_api(client: Client, customer_ids: list[str]) -> None:
    gate = asyncio.Semaphore(8)

    async def rename(customer_id: str) -> None:
        async with gate:
            response = await patch_customer(client, customer_id, {"customerName": f"改名-{customer_id}"}, 1)
            assert response.status_code == 200, response.text

    await asyncio.gather(*(rename(c) for c in customer_ids))


async def ledger_differences(db: asyncpg.Connection, backup_id: str) -> int:
    """Customers whose row differs from the backup point, or exists on one side only."""
    snapshot = ", ".join(f"b.{column}" for column in COMPARED.split(", "))
    current = ", ".join(f"c.{column}" for column in COMPARED.split(", "))
    count: int = await db.fetchval(
        f"""
        SELECT count(*) FROM (SELECT * FROM profile.backup_customers WHERE backup_id = $1) b
        FULL JOIN profile.customer_profiles c ON c.customer_id = b.customer_id
        WHERE c.customer_id IS NULL OR b.customer_id IS NULL OR ({snapshot}) IS DISTINCT FROM ({current})
        """,
        backup_id,
    )
    return count


async def test_backup_rename_restore_and_every_external_system_converges(
    pipeline: str, client: Client, database_url: str
) -> None:
    db = await asyncpg.connect(database_url)
    http = httpx.AsyncClient(timeout=30)
    phases: dict[str, float] = {}
    clock = time.monotonic()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        phases[name] = round(now - clock, 2)
        clock = now

    try:
        await seed_customers(db, CUSTOMERS)
        backup = await client.post("/v1/backups", json={"label": "before the renames"})
        assert backup.status_code == 201, backup.text
        backup_id = backup.json()["backupId"]
        assert backup.json()["customerCount"] == CUSTOMERS

        renamed = [f"C{i:06d}" for i in range(1, CUSTOMERS + 1, CUSTOMERS // RENAMED)]
        assert len(renamed) == RENAMED
        phase("seed and backup")
        await rename_through_the_api(client, renamed)
        phase("renames")

        async def renames_delivered() -> bool | None:
            held = await held_by_systems(http, pipeline)
            done = all(
                len(held[s]) == RENAMED and all(c["profileVersion"] == 2 for c in held[s].values()) for s in SYSTEMS
            )
            return True if done else None

        await eventually(renames_delivered, "the 1,000 renames at CRM, CMS and CSS", 180, interval=0.5, until=answered)
        phase("renames delivered")

        response = await client.post(f"/v1/backups/{backup_id}/restore", json={"dryRun": False})
        phase("restore")
        assert response.status_code == 200, response.text
        report = response.json()
        assert (report["customersChanged"], report["nameChanges"], report["actions"]) == (
            RENAMED,
            RENAMED,
            {"update": RENAMED},
        )

        assert await ledger_differences(db, backup_id) == 0, "the ledger equals the backup point"
        assert await db.fetchval("SELECT count(*) FROM profile.customer_profiles") == CUSTOMERS

        expected = {customer_id: f"客户{int(customer_id[1:])}" for customer_id in renamed}

        async def restored_names_delivered() -> dict[str, Any] | None:
            held = await held_by_systems(http, pipeline)
            for system in SYSTEMS:
                names = {cid: state["customerName"] for cid, state in held[system].items()}
                versions = {state["profileVersion"] for state in held[system].values()}
                if names != expected or versions != {3}:
                    return None
            return held

        await eventually(
            restored_names_delivered, "the restored names at CRM, CMS and CSS", 180, interval=0.5, until=answered
        )
        phase("restored names delivered")
        statuses = await db.fetch("SELECT status, count(*) AS n FROM profile.outbox GROUP BY status")
        assert {r["status"]: r["n"] for r in statuses} == {"published": 2 * RENAMED}
        print(f"{CUSTOMERS} customers, {RENAMED} renamed and restored; seconds per phase: {phases}")
    finally:
        await http.aclose()
        await db.close()

"""Backup and restore of a 100,000-customer ledger (seed 004: restore within five minutes).

    .venv/bin/python -m tests.perf.bench_backup            # embedded PostgreSQL, 100,000 customers
    BENCH_CUSTOMERS=20000 .venv/bin/python -m tests.perf.bench_backup
    BENCH_DATABASE_URL=postgresql://... .venv/bin/python -m tests.perf.bench_backup

Ours: the use cases (``BackupService.create``, ``RestoreService.restore``) on the real schema.
Baseline: what the seed's script does with the same data: ``CREATE TABLE ... AS SELECT`` for a
backup, one set-based ``UPDATE ... FROM`` for a restore (no history, no audit, no events: the
external systems would never hear of it). The ratio is the price of going through the domain.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from prometheus_client import CollectorRegistry

from libs.devstack.embedded import EmbeddedPostgres
from libs.kit.db import DatabaseSettings, make_engine, sqlalchemy_url
from libs.kit.logging import configure_logging
from services.profile.backups.restore import RestoreService
from services.profile.backups.service import BackupService
from services.profile.backups.sql import PgRestoreLock
from services.profile.domain.restore import BackupKind
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.results import Actor
from services.profile.shared.storage.unit_of_work import SqlUnitOfWorkFactory
from tests.auth_support import contact_protector
from tests.ledger_support import seed_customers
from tests.perf.harness import Figure, below, fresh_database, machine, render_table

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "100000"))
RUNS = int(os.environ.get("BENCH_BACKUP_RUNS", "3"))
ACTOR = Actor(actor_id="bench")
TARGET = below(300, "(seed 004)")
_COLUMNS = (
    "customer_name, contact_phone_encrypted, contact_email_encrypted, contact_address_encrypted, contact_key_id, "
    "contact_phone_hash, contact_digest, account_type, status, version, "
    "created_at, updated_at, deleted_at"
)


async def seed(db: asyncpg.Connection, count: int) -> None:
    await seed_customers(db, count)  # contact data sealed, as the service stores it
    await db.execute("ANALYZE profile.customer_profiles")


async def drift(db: asyncpg.Connection, every: int) -> int:
    """Rename every ``every``-th customer (as committed edits would: new name, next version)."""
    status = await db.execute(
        "UPDATE profile.customer_profiles SET customer_name = customer_name || '-改', version = version + 1, "
        "updated_at = now() WHERE substr(customer_id, 2)::int % $1 = 0",
        every,
    )
    return int(status.split()[-1])


async def timed(work: Awaitable[object]) -> float:
    """Seconds to await ``work`` (a coroutine does nothing until awaited)."""
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


@asynccontextmanager
async def use_cases(url: str) -> AsyncIterator[tuple[BackupService, RestoreService]]:
    engine = make_engine(DatabaseSettings(url=sqlalchemy_url(url), pool_size=4, statement_timeout_ms=120_000))
    try:
        uow_factory = SqlUnitOfWorkFactory(engine, contact_protector())
        metrics = LedgerMetrics(CollectorRegistry())
        yield BackupService(uow_factory, metrics), RestoreService(uow_factory, PgRestoreLock(engine), metrics)
    finally:
        await engine.dispose()


async def bench_backups(db: asyncpg.Connection, backups: BackupService) -> tuple[Figure, str]:
    ours: list[float] = []
    baseline: list[float] = []
    backup_id = ""
    for run in range(RUNS):
        started = time.perf_counter()
        point = await backups.create(BackupKind.MANUAL, f"bench {run}", ACTOR)
        ours.append(time.perf_counter() - started)
        backup_id = point.backup_id
        table = f"bench_copy_{run}"
        baseline.append(await timed(db.execute(f"CREATE TABLE {table} AS SELECT * FROM profile.customer_profiles")))
        await db.execute(f"DROP TABLE {table}")
    figure = Figure(
        scenario=f"backup of {CUSTOMERS:,} customers",
        metric="median",
        unit="s",
        ours=statistics.median(ours),
        baseline=statistics.median(baseline),
        target=below(300, "(one transaction, minutes at most)"),
        runs=ours,
        notes="baseline: CREATE TABLE AS SELECT (seed 004 script)",
    )
    return figure, backup_id


async def restore_baseline(db: asyncpg.Connection, backup_id: str) -> float:
    """The seed's way: overwrite the rows in one statement (no history, audit, events or version: the
    version stays, so no version of the customer is kept either)."""
    return await timed(
        db.execute(
            f"""
            UPDATE profile.customer_profiles c SET ({_COLUMNS}) = (
                b.customer_name, b.contact_phone_encrypted, b.contact_email_encrypted, b.contact_address_encrypted,
                b.contact_key_id, b.contact_phone_hash, b.contact_digest, b.account_type,
                b.status, c.version, b.created_at, b.updated_at, b.deleted_at)
            FROM profile.backup_customers b
            WHERE b.backup_id = $1 AND b.customer_id = c.customer_id AND b.customer_name <> c.customer_name
            """,
            backup_id,
        )
    )


async def bench_restore(
    db: asyncpg.Connection, restores: RestoreService, backup_id: str, every: int, label: str
) -> list[Figure]:
    renamed = await drift(db, every)
    dry_run = await timed(restores.restore(backup_id, None, dry_run=True, actor=ACTOR))
    outbox_before = await db.fetchval("SELECT count(*) FROM profile.outbox")
    started = time.perf_counter()
    report = await restores.restore(backup_id, None, dry_run=False, actor=ACTOR)
    ours = time.perf_counter() - started
    events = await db.fetchval("SELECT count(*) FROM profile.outbox") - outbox_before
    assert report.name_changes == renamed == events, (report.name_changes, renamed, events)
    assert (await restores.restore(backup_id, None, dry_run=True, actor=ACTOR)).customers_changed == 0
    await drift(db, every)
    baseline = await restore_baseline(db, backup_id)
    notes = (
        f"{renamed:,} renamed back, each with history, application, audit entry and event; "
        "baseline: one UPDATE ... FROM without them"
    )
    return [
        Figure(f"restore dry run, {label}", "wall", dry_run, unit="s", target=TARGET, notes="differences only"),
        Figure(f"restore, {label}", "wall", ours, baseline=baseline, unit="s", target=TARGET, notes=notes),
        Figure(f"restore, {label}", "names/s", renamed / ours, unit="1/s"),
    ]


async def run(server_url: str) -> list[Figure]:
    url = await fresh_database(server_url, "bench_backup")
    db = await asyncpg.connect(url)
    try:
        print(f"seeding {CUSTOMERS:,} customers ...", flush=True)
        await seed(db, CUSTOMERS)
        async with use_cases(url) as (backups, restores):
            print("backups ...", flush=True)
            backup_figure, backup_id = await bench_backups(db, backups)
            figures = [backup_figure]
            print("restore with 10% of the names changed ...", flush=True)
            figures += await bench_restore(db, restores, backup_id, 10, "10% renamed")
            print("restore with every name changed ...", flush=True)
            figures += await bench_restore(db, restores, backup_id, 1, "100% renamed")
        return figures
    finally:
        await db.close()


@asynccontextmanager
async def postgres() -> AsyncIterator[str]:
    if url := os.environ.get("BENCH_DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(log_file=Path(tempfile.gettempdir()) / "profile-bench-logs" / "postgres-backup.log")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def main() -> int:
    configure_logging("bench-backup", "WARNING")
    print(f"machine: {machine()}", flush=True)
    async with postgres() as server_url:
        figures = await run(server_url)
    print()
    print(render_table(figures))
    for figure in figures:
        if figure.notes:
            print(f"  {figure.scenario} / {figure.metric}: {figure.notes}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

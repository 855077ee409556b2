"""Retention and the operators' gauges on real PostgreSQL (and, for the prune under load, real Kafka).

The maintenance prune removes old terminal rows in bounded batches and never what a lane needs;
the status counts kept by triggers match a full count; the gauges say what seed 000 8.1 names.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db import DatabaseSettings, make_engine
from services.sync_connector import status_counts
from services.sync_connector.retention import RetentionMetrics, RetentionPrune
from services.sync_connector.status_gauges import StatusGauges, StatusRefresher
from tests.connector_support import SYSTEMS, ConnectorHarness, all_systems, metric, name_changed, running_connector
from tests.polling import eventually

DAY_S = 86400.0
RETENTION_S = 30 * DAY_S


def status_refresher(engine: AsyncEngine, registry: CollectorRegistry, *, interval_s: float) -> StatusRefresher:
    """The status gauges of the three systems, with a one-hour near-deadline window."""
    return StatusRefresher(
        engine, StatusGauges(registry), system_codes=SYSTEMS, near_window_s=3600.0, interval_s=interval_s
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(DatabaseSettings(url=database_url, pool_size=3))
    yield engine
    await engine.dispose()


async def seed_records(
    db: asyncpg.Connection, *, count: int, status: str, age: str, prefix: str, attempts: int = 0
) -> None:
    """``count`` records of ``status`` created and completed ``age`` ago (a Postgres interval), over the
    three systems and ``prefix``-named customers, each with ``attempts`` attempts; one statement each."""
    terminal = status in ("success", "superseded", "failed")
    await db.execute(
        f"""
        INSERT INTO sync.external_sync_records
            (event_id, customer_id, application_id, system_code, system_name, sync_status, sync_data,
             profile_version, created_at, updated_at, completed_at, next_attempt_at, deliver_by)
        SELECT gen_random_uuid(), $1 || (i % 1000), 'APP-' || i, (ARRAY['CRM', 'CMS', 'CSS'])[1 + i % 3], 'system',
               $2, '{{}}'::jsonb, i, now() - CAST($3::text AS interval), now() - CAST($3::text AS interval),
               {"now() - CAST($3::text AS interval)" if terminal else "NULL"},
               {"NULL" if terminal else "now() + interval '1 day'"},
               now() - CAST($3::text AS interval) + interval '1 day'
        FROM generate_series(1, $4) AS i
        """,
        prefix,
        status,
        age,
        count,
    )
    if attempts:
        await db.execute(
            """
            INSERT INTO sync.external_sync_attempts (record_id, attempt_no, outcome, http_status, duration_ms,
                                                     attempted_at)
            SELECT r.id, n, 'applied', 200, 5.0, r.created_at FROM sync.external_sync_records r,
                   generate_series(1, $2) AS n
            WHERE r.customer_id LIKE $1 || '%'
            """,
            prefix,
            attempts,
        )


async def full_counts(db: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await db.fetch(
        "SELECT system_code, sync_status, count(*) AS n FROM sync.external_sync_records GROUP BY 1, 2"
    )
    return {(row["system_code"], row["sync_status"]): row["n"] for row in rows}


async def kept_counts(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    async with engine.begin() as connection:
        while await status_counts.fold(connection, limit=7) == 7:  # a small limit: several folds
            pass
    async with engine.connect() as connection:
        counts = await status_counts.status_counts(connection, list(SYSTEMS))
    return {(code, status): n for code, by in counts.items() for status, n in by.items() if n}


async def test_status_counts_follow_inserts_transitions_deletes_and_truncate(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await seed_records(db, count=30, status="success", age="40 days", prefix="A")
    await seed_records(db, count=12, status="pending", age="1 hour", prefix="B")
    assert (
        await kept_counts(engine)
        == await full_counts(db)
        == {(code, status): n for code in SYSTEMS for status, n in (("success", 10), ("pending", 4))}
    )
    # Transitions (and updates that leave the status alone), a delete, all in a few statements.
    await db.execute("UPDATE sync.external_sync_records SET sync_status = 'retrying' WHERE customer_id LIKE 'B%'")
    await db.execute("UPDATE sync.external_sync_records SET next_attempt_at = now() WHERE customer_id LIKE 'B%'")
    await db.execute(
        "UPDATE sync.external_sync_records SET sync_status = 'success' WHERE id IN "
        "(SELECT id FROM sync.external_sync_records WHERE customer_id LIKE 'B%' ORDER BY id LIMIT 5)"
    )
    await db.execute("DELETE FROM sync.external_sync_records WHERE customer_id LIKE 'A%' AND system_code = 'CMS'")
    # Without folding, the readers add the pending deltas; folded, the same.
    async with engine.connect() as connection:
        unfolded = await status_counts.status_counts(connection, list(SYSTEMS))
    assert {(c, s): n for c, by in unfolded.items() for s, n in by.items() if n} == await full_counts(db)
    assert await kept_counts(engine) == await full_counts(db)
    assert await db.fetchval("SELECT count(*) FROM sync.record_status_deltas") == 0
    await db.execute(
        "TRUNCATE sync.external_sync_attempts, sync.dead_letters, sync.external_sync_records RESTART IDENTITY"
    )
    assert await kept_counts(engine) == {}


async def test_the_admin_audit_stays_append_only_but_for_the_retention_prune(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO sync.admin_actions (actor, channel, action, affected_count, created_at) "
        "VALUES ('old', 'cli', 'retry', 1, now() - interval '40 days'), ('new', 'cli', 'retry', 1, now())"
    )
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("DELETE FROM sync.admin_actions WHERE actor = 'old'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("UPDATE sync.admin_actions SET actor = 'x'")
    async with db.transaction():
        await db.execute("SELECT set_config('sync.retention_prune', 'on', true)")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):  # a young row, even for the prune
            await db.execute("DELETE FROM sync.admin_actions WHERE actor = 'new'")
    async with db.transaction():
        await db.execute("SELECT set_config('sync.retention_prune', 'on', true)")
        assert await db.execute("DELETE FROM sync.admin_actions WHERE actor = 'old'") == "DELETE 1"


async def test_prune_removes_only_old_finished_rows_and_keeps_every_lane(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await seed_records(db, count=9, status="success", age="40 days", prefix="OLDOK", attempts=2)
    await seed_records(db, count=3, status="superseded", age="31 days", prefix="OLDSUP")
    await seed_records(db, count=3, status="failed", age="40 days", prefix="OLDDLQ", attempts=1)
    await seed_records(db, count=3, status="failed", age="40 days", prefix="OLDUNPUB", attempts=1)
    await seed_records(db, count=3, status="retrying", age="40 days", prefix="OLDOPEN", attempts=1)
    await seed_records(db, count=6, status="success", age="29 days", prefix="RECENT", attempts=1)
    # Dead letters: published for OLDDLQ (pruned with their records), not yet for OLDUNPUB (kept).
    await db.execute(
        """
        INSERT INTO sync.dead_letters (record_id, event_id, system_code, customer_id, profile_version, reason,
                                       payload, headers, attempts, created_at, published_at)
        SELECT id, event_id, system_code, customer_id, profile_version, 'retries_exhausted', '{}', '{}', 1,
               completed_at, CASE WHEN customer_id LIKE 'OLDDLQ%' THEN completed_at END
        FROM sync.external_sync_records WHERE customer_id LIKE 'OLDDLQ%' OR customer_id LIKE 'OLDUNPUB%'
        """
    )
    await db.execute(
        """
        INSERT INTO sync.customer_sync_state (system_code, customer_id, applied_version, applied_event_id)
        SELECT system_code, customer_id, 1000, gen_random_uuid()
        FROM (SELECT DISTINCT system_code, customer_id FROM sync.external_sync_records) AS lanes
        """
    )
    await db.execute(
        """
        INSERT INTO sync.notification_records (event_id, channel, customer_id, application_id, status, event,
                                               max_attempts, created_at, completed_at, next_attempt_at)
        SELECT gen_random_uuid(), 'email', 'N' || i, 'APP', s.status, '{}', 5, now() - s.age, s.done, s.next_at
        FROM generate_series(1, 4) AS i, (VALUES
            ('sent', interval '40 days', now() - interval '40 days', NULL::timestamptz),
            ('skipped_stale', interval '40 days', now() - interval '40 days', NULL),
            ('retrying', interval '40 days', NULL, now()),
            ('sent', interval '2 days', now() - interval '2 days', NULL)) AS s(status, age, done, next_at)
        """
    )
    await db.execute(
        "INSERT INTO sync.notification_attempts (record_id, attempt_no, outcome, duration_ms) "
        "SELECT id, 1, 'sent', 1.0 FROM sync.notification_records"
    )
    await db.execute(
        "INSERT INTO sync.admin_actions (actor, channel, action, affected_count, created_at) "
        "SELECT 'a' || i, 'http', 'retry', 1, now() - (i * interval '10 days') FROM generate_series(1, 5) AS i"
    )
    await db.execute(
        """
        INSERT INTO sync.unprocessable_messages (system_code, topic, kafka_partition, kafka_offset, reason, error,
                                                 failures, created_at, published_at)
        VALUES ('CRM', 't', 0, 1, 'undecodable', 'x', 1, now() - interval '40 days', now() - interval '40 days'),
               ('CRM', 't', 0, 2, 'undecodable', 'x', 1, now() - interval '40 days', NULL),
               ('CRM', 't', 0, 3, 'undecodable', 'x', 1, now() - interval '2 days', now() - interval '2 days')
        """
    )
    # Admin notification windows: one sent 40 days ago with five occurrences (pruned), one 40 days old still
    # retrying (kept: not done), one sent two days ago (kept).
    for status, age in (("sent", timedelta(days=40)), ("retrying", timedelta(days=40)), ("sent", timedelta(days=2))):
        window = await db.fetchval(
            "INSERT INTO sync.admin_notifications (notice_id, cause_key, window_start, window_end, first_seen_at, "
            "last_seen_at, occurrences, status) VALUES (gen_random_uuid(), 'dead-letter:CSS', now() - $1::interval, "
            "now() - $1::interval, now() - $1::interval, now() - $1::interval, 5, $2) RETURNING id",
            age,
            status,
        )
        await db.execute(
            "INSERT INTO sync.admin_occurrences (notification_id, cause_key, occurrence_key, occurred_at) "
            "SELECT $1::bigint, 'dead-letter:CSS', $1::bigint || ':' || n, now() FROM generate_series(1, 5) AS n",
            window,
        )
    lanes_before = await db.fetch("SELECT * FROM sync.customer_sync_state ORDER BY system_code, customer_id")

    registry = CollectorRegistry()
    report = await RetentionPrune(
        engine, older_than_s=RETENTION_S, batch_size=4, metrics=RetentionMetrics(registry)
    ).run()

    assert report.pruned == {
        "external_sync_records": 15,
        "external_sync_attempts": 9 * 2 + 3,
        "dead_letters": 3,
        "notification_records": 8,
        "notification_attempts": 8,
        "unprocessable_messages": 1,
        "admin_actions": 3,  # 30, 40 and 50 days old (the 30-day one by some microseconds)
        "admin_notifications": 1,
        "admin_occurrences": 5,
        "maintenance_runs": 0,
    }
    assert await db.fetchval("SELECT count(*) FROM sync.admin_occurrences") == 10
    assert report.largest_statement <= 4
    assert report.statements >= 15 // 4 + 21 // 4
    remaining = await db.fetch(
        "SELECT left(customer_id, length(customer_id) - 1) AS prefix, sync_status, count(*) AS n "
        "FROM sync.external_sync_records GROUP BY 1, 2"
    )
    assert {(r["prefix"], r["sync_status"]): r["n"] for r in remaining} == {
        ("OLDUNPUB", "failed"): 3,
        ("OLDOPEN", "retrying"): 3,
        ("RECENT", "success"): 6,
    }
    assert await db.fetchval("SELECT count(*) FROM sync.external_sync_attempts") == 3 + 3 + 6
    assert await db.fetchval("SELECT count(*) FROM sync.dead_letters WHERE published_at IS NULL") == 3
    assert await db.fetchval("SELECT count(*) FROM sync.dead_letters") == 3
    notifications = await db.fetch("SELECT status, count(*) AS n FROM sync.notification_records GROUP BY 1")
    assert {r["status"]: r["n"] for r in notifications} == {"retrying": 4, "sent": 4}
    assert await db.fetchval("SELECT count(*) FROM sync.notification_attempts") == 8
    assert await db.fetchval("SELECT count(*) FROM sync.admin_actions") == 2
    assert await db.fetchval("SELECT count(*) FROM sync.unprocessable_messages") == 2
    # The lanes, applied versions included, are all there, untouched.
    assert await db.fetch("SELECT * FROM sync.customer_sync_state ORDER BY system_code, customer_id") == lanes_before
    assert await kept_counts(engine) == await full_counts(db)
    # Metrics of the run, and its row for every connector's gauges.
    assert registry.get_sample_value("sync_retention_pruned_rows_total", {"table": "external_sync_records"}) == 15
    assert registry.get_sample_value("sync_retention_statement_rows_count", {"table": "external_sync_records"}) == 4
    gauges_registry = CollectorRegistry()
    refresher = status_refresher(engine, gauges_registry, interval_s=60.0)
    await refresher.refresh()
    assert gauges_registry.get_sample_value("sync_retention_last_run_timestamp_seconds") == pytest.approx(
        report.started_at.timestamp() + report.duration_s, abs=5
    )
    assert gauges_registry.get_sample_value("sync_retention_last_run_pruned_rows", {"table": "dead_letters"}) == 3
    # A second run finds nothing more; the first run's row is young, so it stays.
    again = await RetentionPrune(engine, older_than_s=RETENTION_S, batch_size=4).run()
    assert sum(again.pruned.values()) == 0
    assert await db.fetchval("SELECT count(*) FROM sync.maintenance_runs") == 2


async def test_gauges_say_counts_oldest_undelivered_age_and_records_near_their_deadline(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    await seed_records(db, count=6, status="success", age="2 hours", prefix="DONE")
    await seed_records(db, count=3, status="retrying", age="23 hours 30 minutes", prefix="NEAR")
    await seed_records(db, count=3, status="pending", age="10 minutes", prefix="FRESH")
    await db.execute(
        "UPDATE sync.external_sync_records SET created_at = now() - interval '25 hours', "
        "deliver_by = now() - interval '1 hour' "
        "WHERE customer_id = 'NEAR1' AND system_code = 'CMS'"  # past its deadline, still open: counted
    )
    await db.execute(  # CSS: a two-day deadline
        "UPDATE sync.external_sync_records SET deliver_by = created_at + interval '2 days' WHERE system_code = 'CSS'"
    )
    # Re-driven by an admin: a full deadline from its next attempt (deliver_by unset), so not near one.
    await seed_records(db, count=3, status="retrying", age="23 hours 10 minutes", prefix="REDRIVEN")
    await db.execute("UPDATE sync.external_sync_records SET deliver_by = NULL WHERE customer_id LIKE 'REDRIVEN%'")
    registry = CollectorRegistry()
    refresher = status_refresher(engine, registry, interval_s=0.05)
    refresher.start()
    try:

        async def refreshed() -> float | None:
            return registry.get_sample_value("external_sync_status", {"system_code": "CRM", "status": "success"})

        await eventually(refreshed, "the first refresh")
    finally:
        await refresher.stop()

    def gauge(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    for code in SYSTEMS:
        assert gauge("external_sync_status", system_code=code, status="success") == 2
        assert gauge("external_sync_status", system_code=code, status="retrying") == 2
        assert gauge("external_sync_status", system_code=code, status="pending") == 1
        assert gauge("external_sync_status", system_code=code, status="failed") == 0
    assert gauge("sync_oldest_undelivered_age_seconds", system_code="CRM") == pytest.approx(23.5 * 3600, abs=60)
    assert gauge("sync_oldest_undelivered_age_seconds", system_code="CMS") == pytest.approx(25 * 3600, abs=60)
    # CRM and CMS: a day's deadline, so the 23.5-hour-old record is within the hour; CSS has two days.
    assert gauge("sync_records_near_deadline", system_code="CRM") == 1
    assert gauge("sync_records_near_deadline", system_code="CMS") == 1
    assert gauge("sync_records_near_deadline", system_code="CSS") == 0
    assert gauge("sync_retention_last_run_timestamp_seconds") == 0  # no run yet
    # Nothing open: the age is 0.
    await db.execute("UPDATE sync.external_sync_records SET sync_status = 'success', completed_at = now()")
    await refresher.refresh()
    assert gauge("sync_oldest_undelivered_age_seconds", system_code="CRM") == 0
    assert gauge("external_sync_status", system_code="CSS", status="success") == 5


async def test_prune_of_100k_old_records_in_bounded_batches_while_deliveries_go_on(
    harness: ConnectorHarness, engine: AsyncEngine
) -> None:
    db = harness.db
    # 100,000 old terminal records with one attempt each (the failed ones' dead letters published),
    # over 1,000 customers per system whose lanes hold applied version 1,000,000.
    await seed_records(db, count=90_000, status="success", age="45 days", prefix="OLD", attempts=1)
    await seed_records(db, count=6_000, status="superseded", age="45 days", prefix="OLDS")
    await seed_records(db, count=4_000, status="failed", age="45 days", prefix="OLDF")
    await db.execute(
        """
        INSERT INTO sync.dead_letters (record_id, event_id, system_code, customer_id, profile_version, reason,
                                       payload, headers, attempts, published_at)
        SELECT id, event_id, system_code, customer_id, profile_version, 'rejected', '{}', '{}', 1, now()
        FROM sync.external_sync_records WHERE sync_status = 'failed'
        """
    )
    await db.execute(
        """
        INSERT INTO sync.customer_sync_state (system_code, customer_id, applied_version, applied_event_id)
        SELECT system_code, customer_id, 1000000, gen_random_uuid()
        FROM (SELECT DISTINCT system_code, customer_id FROM sync.external_sync_records) AS lanes
        """
    )
    assert await db.fetchval("SELECT count(*) FROM sync.external_sync_records") == 100_000
    lanes_before = await db.fetch("SELECT * FROM sync.customer_sync_state ORDER BY system_code, customer_id")

    registry = CollectorRegistry()
    prune = RetentionPrune(engine, older_than_s=RETENTION_S, batch_size=1000, metrics=RetentionMetrics(registry))
    settings = harness.settings(status_refresh_interval_s=0.2)
    async with running_connector(settings) as runtime:
        pruning = asyncio.create_task(prune.run())
        fresh = []
        for i in range(40):  # deliveries go on while the prune runs
            fresh.append(await harness.produce(name_changed(f"NEW{i % 20}", 1 + i // 20)))
            await asyncio.sleep(0.02)
        # A stale event of a pruned customer: its lane's applied version still refuses it.
        stale = await harness.produce(name_changed("OLD7", 5))
        overlapped = not pruning.done()
        for event_id in fresh:
            await eventually(harness.statuses_become(event_id, all_systems("success")), f"{event_id} delivered", 60)
        await eventually(harness.statuses_become(stale, all_systems("superseded")), "the stale event superseded", 60)
        report = await pruning

        assert overlapped, "the prune was still running while the fresh events were produced"
        assert report.pruned["external_sync_records"] == 100_000
        assert report.pruned["external_sync_attempts"] == 90_000
        assert report.pruned["dead_letters"] == 4_000
        assert report.largest_statement <= 1000, "no statement deletes more than a batch"
        assert report.statements >= 100 + 90 + 4
        assert registry.get_sample_value("sync_retention_pruned_rows_total", {"table": "external_sync_records"}) == (
            100_000
        )
        assert not [call for call in harness.stub.state.received() if call.body["customerId"] == "OLD7"]

        # Only the old terminal rows are gone; every lane is there with its applied version.
        assert await db.fetchval("SELECT count(*) FROM sync.external_sync_records WHERE customer_id LIKE 'OLD%'") == (
            len(SYSTEMS)  # the stale event's superseded records
        )
        assert await db.fetchval("SELECT count(*) FROM sync.external_sync_records WHERE customer_id LIKE 'NEW%'") == (
            len(fresh) * len(SYSTEMS)
        )
        lanes_after = {
            (row["system_code"], row["customer_id"]): row
            for row in await db.fetch("SELECT * FROM sync.customer_sync_state")
        }
        for lane in lanes_before:
            kept = lanes_after[(lane["system_code"], lane["customer_id"])]
            assert (kept["applied_version"], kept["applied_event_id"]) == (1000000, lane["applied_event_id"])

        # The gauges: current counts from the kept counts, equal to a full count.
        async def gauges_current() -> bool:
            full = await full_counts(db)
            return all(
                metric(runtime, "external_sync_status", system_code=code, status=status) == full.get((code, status), 0)
                for code in SYSTEMS
                for status in ("pending", "retrying", "success", "failed", "superseded")
            )

        await eventually(gauges_current, "external_sync_status to match a full count")
        for code in SYSTEMS:
            assert metric(runtime, "external_sync_status", system_code=code, status="success") == 40
            assert metric(runtime, "external_sync_transitions_total", system_code=code, status="success") == 40
            assert metric(runtime, "sync_oldest_undelivered_age_seconds", system_code=code) == 0

        async def last_run_exported() -> bool:
            return metric(runtime, "sync_retention_last_run_pruned_rows", table="dead_letters") == 4_000

        await eventually(last_run_exported, "the last run's gauges")


async def test_the_maintenance_command_prunes_with_the_settings_and_prints_its_report(
    database_url: str, db: asyncpg.Connection
) -> None:
    await seed_records(db, count=5, status="success", age="12 days", prefix="OLD", attempts=1)
    await seed_records(db, count=3, status="success", age="1 day", prefix="NEW")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.sync_connector",
        "maintenance",
        env={
            **os.environ,
            "CONNECTOR_DB_URL": database_url,
            "CONNECTOR_RETENTION_DAYS": "10",
            "CONNECTOR_RETENTION_BATCH_SIZE": "2",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    report = json.loads(stdout)
    assert (report["pruned"]["external_sync_records"], report["pruned"]["external_sync_attempts"]) == (5, 5)
    assert report["largestStatement"] == 2
    assert "retention_pruned" in stderr.decode()  # the run's log line
    assert await db.fetchval("SELECT count(*) FROM sync.external_sync_records") == 3
    assert await db.fetchval("SELECT pruned->>'external_sync_records' FROM sync.maintenance_runs") == "5"

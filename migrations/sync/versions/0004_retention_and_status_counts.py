"""Retention and current status counts: what the connector's maintenance prunes, and counts that scan no history.

``record_status_counts`` holds how many ``external_sync_records`` are in each
(system, status); triggers on the records append the changes to
``record_status_deltas`` (an insert never waits for another writer, unlike an
update of one hot counter row), and the connector folds the deltas into the
counts every few seconds. A reader adds the counts and the deltas not yet folded:
two small tables, whatever the size of the history.

Indexes for the two scans the connector repeats: terminal rows by completion time
(the retention prune, oldest first, in bounded batches) and open rows by creation
time per system (the oldest undelivered change, the records near their deadline).

``admin_actions`` stays append-only for everybody but the retention prune: a delete
needs the transaction-local setting ``sync.retention_prune = 'on'`` and a row older
than one day. ``maintenance_runs`` keeps what each maintenance run pruned (the gauges of
the connector read the latest).

Revision ID: sync_0004
Revises: sync_0003
"""

from migrations.env_common import execute_script

revision = "sync_0004"
down_revision = "sync_0003"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- No writer may change a record while the triggers are created and the counts are filled in.
LOCK TABLE sync.external_sync_records IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE sync.record_status_counts (
    system_code  varchar(20)  NOT NULL,
    status       varchar(16)  NOT NULL,
    n            bigint       NOT NULL,
    PRIMARY KEY (system_code, status)
);
CREATE TABLE sync.record_status_deltas (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    system_code  varchar(20)  NOT NULL,
    status       varchar(16)  NOT NULL,
    delta        bigint       NOT NULL
);

-- Inserts and deletes: one delta row per (system, status) per statement (a wave, a prune batch).
CREATE FUNCTION sync.count_inserted_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync.record_status_deltas (system_code, status, delta)
    SELECT system_code, sync_status, count(*) FROM inserted GROUP BY system_code, sync_status;
    RETURN NULL;
END
$$;
CREATE FUNCTION sync.count_deleted_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync.record_status_deltas (system_code, status, delta)
    SELECT system_code, sync_status, -count(*) FROM deleted GROUP BY system_code, sync_status;
    RETURN NULL;
END
$$;
-- Status changes: per row, and only when the status (or the system) changed; the WHEN clause
-- is evaluated without calling the function, so claims and reschedules cost nothing.
CREATE FUNCTION sync.count_record_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync.record_status_deltas (system_code, status, delta)
    VALUES (OLD.system_code, OLD.sync_status, -1), (NEW.system_code, NEW.sync_status, 1);
    RETURN NULL;
END
$$;
CREATE TRIGGER records_count_inserts AFTER INSERT ON sync.external_sync_records
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION sync.count_inserted_records();
CREATE TRIGGER records_count_deletes AFTER DELETE ON sync.external_sync_records
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION sync.count_deleted_records();
CREATE TRIGGER records_count_transitions AFTER UPDATE OF sync_status, system_code ON sync.external_sync_records
    FOR EACH ROW
    WHEN (OLD.sync_status IS DISTINCT FROM NEW.sync_status OR OLD.system_code IS DISTINCT FROM NEW.system_code)
    EXECUTE FUNCTION sync.count_record_transition();
-- A truncate (tests, a rebuilt environment) leaves nothing to count.
CREATE FUNCTION sync.reset_record_status_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sync.record_status_deltas;
    DELETE FROM sync.record_status_counts;
    RETURN NULL;
END
$$;
CREATE TRIGGER records_count_truncate AFTER TRUNCATE ON sync.external_sync_records
    FOR EACH STATEMENT EXECUTE FUNCTION sync.reset_record_status_counts();

INSERT INTO sync.record_status_counts (system_code, status, n)
    SELECT system_code, sync_status, count(*) FROM sync.external_sync_records GROUP BY system_code, sync_status;

-- The retention prune: terminal rows, oldest completion first.
CREATE INDEX ix_sync_terminal_completed ON sync.external_sync_records (completed_at)
    WHERE sync_status IN ('success', 'superseded', 'failed');
CREATE INDEX ix_notification_terminal_completed ON sync.notification_records (completed_at)
    WHERE status NOT IN ('pending', 'retrying');
-- Open rows by age per system: the oldest undelivered change, the records near their deadline.
CREATE INDEX ix_sync_open_created ON sync.external_sync_records (system_code, created_at)
    WHERE sync_status IN ('pending', 'retrying');

-- One row per maintenance run (CLI, CronJob, make run's daily timer): what it pruned, read by
-- every connector instance for its gauges (a run's own process is gone before a scrape).
CREATE TABLE sync.maintenance_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task            varchar(32)  NOT NULL,
    started_at      timestamptz  NOT NULL,
    finished_at     timestamptz  NOT NULL DEFAULT now(),
    cutoff          timestamptz  NOT NULL,
    pruned          jsonb        NOT NULL,
    statements      integer      NOT NULL,
    largest_statement integer    NOT NULL
);
CREATE INDEX ix_maintenance_runs_task ON sync.maintenance_runs (task, id);

CREATE OR REPLACE FUNCTION sync.reject_admin_action_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('sync.retention_prune', true) = 'on'
       AND OLD.created_at < now() - interval '1 day' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'sync.admin_actions is append-only (only the retention prune deletes rows older than a day)';
END
$$;
"""

DOWNGRADE = r"""
CREATE OR REPLACE FUNCTION sync.reject_admin_action_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sync.admin_actions is append-only';
END
$$;
DROP TABLE sync.maintenance_runs;
DROP INDEX sync.ix_sync_open_created;
DROP INDEX sync.ix_notification_terminal_completed;
DROP INDEX sync.ix_sync_terminal_completed;
DROP TRIGGER records_count_truncate ON sync.external_sync_records;
DROP FUNCTION sync.reset_record_status_counts();
DROP TRIGGER records_count_transitions ON sync.external_sync_records;
DROP TRIGGER records_count_deletes ON sync.external_sync_records;
DROP TRIGGER records_count_inserts ON sync.external_sync_records;
DROP FUNCTION sync.count_record_transition();
DROP FUNCTION sync.count_deleted_records();
DROP FUNCTION sync.count_inserted_records();
DROP TABLE sync.record_status_deltas;
DROP TABLE sync.record_status_counts;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

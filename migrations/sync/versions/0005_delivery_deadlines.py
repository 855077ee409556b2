"""Retries by time: a delivery deadline per record, the count cap optional, ``deadline`` dead letters.

``deliver_by`` is when a record (of a system, or a notification of a channel)
stops being retried: a transient failure at or after it ends ``failed`` with a
dead letter of reason ``deadline``. The connector sets it when it first sees
the event (the system's delivery deadline from then); NULL means "from the next
attempt on" (rows written before this migration, and records an admin
re-drove, get a full deadline again). ``max_retry_count`` /
``max_attempts`` become optional: NULL means no count cap (the default).

Revision ID: sync_0005
Revises: sync_0004
"""

from migrations.env_common import execute_script

revision = "sync_0005"
down_revision = "sync_0004"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE sync.external_sync_records
    ADD COLUMN deliver_by timestamptz,
    ALTER COLUMN max_retry_count DROP NOT NULL,
    ALTER COLUMN max_retry_count DROP DEFAULT;
-- Open records past their deadline, per system (those waiting behind an open breaker are failed by it).
CREATE INDEX ix_sync_deadline ON sync.external_sync_records (system_code, deliver_by)
    WHERE sync_status IN ('pending', 'retrying');

ALTER TABLE sync.dead_letters DROP CONSTRAINT dead_letters_reason_check;
ALTER TABLE sync.dead_letters ADD CONSTRAINT dead_letters_reason_check
    CHECK (reason IN ('retries_exhausted', 'rejected', 'deadline'));

ALTER TABLE sync.notification_records
    ADD COLUMN deliver_by timestamptz,
    ALTER COLUMN max_attempts DROP NOT NULL;
CREATE INDEX ix_notification_deadline ON sync.notification_records (channel, deliver_by)
    WHERE status IN ('pending', 'retrying');
"""

DOWNGRADE = r"""
DROP INDEX sync.ix_notification_deadline;
UPDATE sync.notification_records SET max_attempts = attempts + 5 WHERE max_attempts IS NULL;
ALTER TABLE sync.notification_records
    ALTER COLUMN max_attempts SET NOT NULL,
    DROP COLUMN deliver_by;

ALTER TABLE sync.dead_letters DROP CONSTRAINT dead_letters_reason_check;
UPDATE sync.dead_letters SET reason = 'retries_exhausted' WHERE reason = 'deadline';
ALTER TABLE sync.dead_letters ADD CONSTRAINT dead_letters_reason_check
    CHECK (reason IN ('retries_exhausted', 'rejected'));

DROP INDEX sync.ix_sync_deadline;
UPDATE sync.external_sync_records SET max_retry_count = retry_count + 3 WHERE max_retry_count IS NULL;
ALTER TABLE sync.external_sync_records
    ALTER COLUMN max_retry_count SET DEFAULT 3,
    ALTER COLUMN max_retry_count SET NOT NULL,
    DROP COLUMN deliver_by;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

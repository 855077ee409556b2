"""Sync schema: one record per (event, system), every attempt, applied versions.

Revision ID: sync_0001
Revises:
"""

from migrations.env_common import execute_script

revision = "sync_0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE sync.external_sync_records (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          uuid         NOT NULL,
    customer_id       varchar(50)  NOT NULL,
    application_id    varchar(50)  NOT NULL,
    system_code       varchar(20)  NOT NULL,
    system_name       varchar(50)  NOT NULL,
    sync_status       varchar(16)  NOT NULL DEFAULT 'pending'
        CHECK (sync_status IN ('pending', 'success', 'failed', 'retrying', 'superseded')),
    sync_data         jsonb        NOT NULL,
    error_message     text,
    retry_count       integer      NOT NULL DEFAULT 0,
    max_retry_count   integer      NOT NULL DEFAULT 3,
    profile_version   integer      NOT NULL,
    last_http_status  integer,
    next_attempt_at   timestamptz,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    CONSTRAINT uq_sync_event_system UNIQUE (event_id, system_code)
);
CREATE INDEX ix_sync_customer ON sync.external_sync_records (customer_id, created_at);
CREATE INDEX ix_sync_status ON sync.external_sync_records (sync_status);
CREATE INDEX ix_sync_due ON sync.external_sync_records (next_attempt_at)
    WHERE sync_status = 'retrying';

CREATE TABLE sync.external_sync_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id       bigint       NOT NULL REFERENCES sync.external_sync_records (id),
    attempt_no      integer      NOT NULL,
    outcome         varchar(16)  NOT NULL,
    http_status     integer,
    error_message   text,
    duration_ms     double precision NOT NULL,
    attempted_at    timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX ix_sync_attempts_record ON sync.external_sync_attempts (record_id);

-- The newest profile version each system has applied, per customer: an older
-- event arriving later is recorded as superseded, never sent.
CREATE TABLE sync.customer_sync_state (
    system_code       varchar(20)  NOT NULL,
    customer_id       varchar(50)  NOT NULL,
    applied_version   integer      NOT NULL,
    applied_event_id  uuid         NOT NULL,
    updated_at        timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (system_code, customer_id)
);
"""

DOWNGRADE = r"""
DROP TABLE sync.customer_sync_state;
DROP TABLE sync.external_sync_attempts;
DROP TABLE sync.external_sync_records;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

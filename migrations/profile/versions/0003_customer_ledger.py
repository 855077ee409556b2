"""The customer ledger: listing indexes, application origin, purge tombstones, backups, idempotency keys.

Revision ID: profile_0003
Revises: profile_0002
"""

from migrations.env_common import execute_script

revision = "profile_0003"
down_revision = "profile_0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Keyset pagination of live profiles and of the recycle bin; prefix search on the name.
CREATE INDEX ix_customer_profiles_listing ON profile.customer_profiles (created_at, customer_id)
    WHERE deleted_at IS NULL;
CREATE INDEX ix_customer_profiles_recycle_bin ON profile.customer_profiles (deleted_at, customer_id)
    WHERE deleted_at IS NOT NULL;
CREATE INDEX ix_customer_profiles_name_prefix ON profile.customer_profiles (customer_name varchar_pattern_ops);

-- Name changes that do not come from a customer's application (a PATCH of the
-- profile, a restore from a backup) still get an application row, so every
-- history row and event points at one completed application (invariant 1).
ALTER TABLE profile.name_change_applications
    ADD COLUMN origin varchar(16) NOT NULL DEFAULT 'application'
        CHECK (origin IN ('application', 'profile_edit', 'backup_restore'));
CREATE INDEX ix_applications_listing ON profile.name_change_applications (created_at DESC, application_id DESC);
CREATE INDEX ix_applications_status_listing
    ON profile.name_change_applications (status, created_at DESC, application_id DESC);

-- What is left of a purged customer: its last profile version, so a customer
-- re-created under the same id (or restored from a backup) continues above every
-- version external systems have already applied.
CREATE TABLE profile.purged_customers (
    customer_id   varchar(50)  PRIMARY KEY,
    last_version  integer      NOT NULL,
    purged_at     timestamptz  NOT NULL
);

-- Ledger snapshots (seed 004 customers_backup_history): one row per backup point,
-- the customers copied with one INSERT ... SELECT.
CREATE TABLE profile.backups (
    backup_id       varchar(50)  PRIMARY KEY,
    kind            varchar(16)  NOT NULL CHECK (kind IN ('manual', 'scheduled')),
    label           varchar(200),
    created_by      varchar(100) NOT NULL,
    created_at      timestamptz  NOT NULL,
    customer_count  integer      NOT NULL,
    deleted_count   integer      NOT NULL
);
CREATE INDEX ix_backups_listing ON profile.backups (created_at DESC, backup_id DESC);
CREATE INDEX ix_backups_kind ON profile.backups (kind, created_at);

CREATE TABLE profile.backup_customers (
    backup_id        varchar(50)  NOT NULL REFERENCES profile.backups (backup_id) ON DELETE CASCADE,
    customer_id      varchar(50)  NOT NULL,
    customer_name    varchar(100) NOT NULL,
    contact_phone    varchar(20),
    contact_email    varchar(254),
    contact_address  text,
    account_type     varchar(16)  NOT NULL,
    status           varchar(16)  NOT NULL,
    version          integer      NOT NULL,
    created_at       timestamptz  NOT NULL,
    updated_at       timestamptz  NOT NULL,
    deleted_at       timestamptz,
    PRIMARY KEY (backup_id, customer_id)
);

-- A backup point is immutable: it can expire as a whole, never be edited.
CREATE FUNCTION profile.backup_customers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'backup_customers is immutable' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER backup_customers_immutable BEFORE UPDATE ON profile.backup_customers
    FOR EACH ROW EXECUTE FUNCTION profile.backup_customers_immutable();

-- The audit log was already protected against UPDATE and DELETE; TRUNCATE skips row triggers.
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON profile.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION profile.audit_logs_append_only();
CREATE INDEX ix_audit_event_type ON profile.audit_logs (event_type, event_time);

-- Idempotency-Key records of POST requests, scoped by method and path.
CREATE TABLE profile.idempotency_keys (
    scope             varchar(300) NOT NULL,
    idempotency_key   varchar(200) NOT NULL,
    request_hash      char(64)     NOT NULL,
    state             varchar(16)  NOT NULL CHECK (state IN ('in_progress', 'completed')),
    status_code       integer,
    response_headers  jsonb,
    response_body     bytea,
    created_at        timestamptz  NOT NULL,
    locked_until      timestamptz,
    expires_at        timestamptz  NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX ix_idempotency_keys_expiry ON profile.idempotency_keys (expires_at);
"""

DOWNGRADE = r"""
DROP TABLE profile.idempotency_keys;
DROP INDEX profile.ix_audit_event_type;
DROP TRIGGER audit_logs_no_truncate ON profile.audit_logs;
DROP TABLE profile.backup_customers;
DROP FUNCTION profile.backup_customers_immutable();
DROP TABLE profile.backups;
DROP TABLE profile.purged_customers;
DROP INDEX profile.ix_applications_status_listing;
DROP INDEX profile.ix_applications_listing;
ALTER TABLE profile.name_change_applications DROP COLUMN origin;
DROP INDEX profile.ix_customer_profiles_name_prefix;
DROP INDEX profile.ix_customer_profiles_recycle_bin;
DROP INDEX profile.ix_customer_profiles_listing;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

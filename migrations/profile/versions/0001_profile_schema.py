"""Profile schema: customers, applications, name history (monthly partitions), audit log, outbox.

Revision ID: profile_0001
Revises:
"""

from migrations.env_common import execute_script

revision = "profile_0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE profile.customer_profiles (
    customer_id      varchar(50)  PRIMARY KEY,
    customer_name    varchar(100) NOT NULL,
    contact_phone    varchar(20),
    contact_email    varchar(254),
    contact_address  text,
    account_type     varchar(16)  NOT NULL
        CHECK (account_type IN ('residential', 'commercial', 'industrial')),
    status           varchar(16)  NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'inactive', 'suspended')),
    version          integer      NOT NULL DEFAULT 1,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
CREATE INDEX ix_customer_profiles_name ON profile.customer_profiles (customer_name);

CREATE TABLE profile.name_change_applications (
    application_id   varchar(50)  PRIMARY KEY,
    customer_id      varchar(50)  NOT NULL REFERENCES profile.customer_profiles (customer_id),
    old_name         varchar(100) NOT NULL,
    new_name         varchar(100) NOT NULL,
    reason           text         NOT NULL,
    status           varchar(16)  NOT NULL
        CHECK (status IN ('pending', 'approved', 'rejected', 'completed', 'update_failed')),
    profile_version  integer      NOT NULL,
    auditor_id       varchar(50),
    audit_comment    text,
    decided_at       timestamptz,
    completed_at     timestamptz,
    failure_code     varchar(40),
    failure_detail   text,
    update_result    jsonb,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX ix_applications_customer ON profile.name_change_applications (customer_id, created_at);
CREATE INDEX ix_applications_status ON profile.name_change_applications (status);

-- Partitioned by month (seed 000 section 7.1); the default partition catches
-- rows whose month was not created ahead of time.
CREATE TABLE profile.name_change_history (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    customer_id      varchar(50)  NOT NULL REFERENCES profile.customer_profiles (customer_id),
    application_id   varchar(50)  NOT NULL REFERENCES profile.name_change_applications (application_id),
    old_name         varchar(100) NOT NULL,
    new_name         varchar(100) NOT NULL,
    change_reason    text,
    profile_version  integer      NOT NULL,
    change_date      timestamptz  NOT NULL DEFAULT now(),
    operator_id      varchar(50)  NOT NULL,
    operator_name    varchar(100),
    PRIMARY KEY (id, change_date)
) PARTITION BY RANGE (change_date);
CREATE TABLE profile.name_change_history_default PARTITION OF profile.name_change_history DEFAULT;
CREATE INDEX ix_history_customer ON profile.name_change_history (customer_id, change_date DESC);
CREATE INDEX ix_history_application ON profile.name_change_history (application_id);

-- Creates the monthly partitions from the current month to months_ahead months later.
CREATE FUNCTION profile.ensure_history_partitions(months_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    created integer := 0;
    part_name text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        part_name := 'name_change_history_' || to_char(month_start + make_interval(months => i), 'YYYYMM');
        IF to_regclass('profile.' || part_name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE profile.%I PARTITION OF profile.name_change_history FOR VALUES FROM (%L) TO (%L)',
                part_name,
                (month_start + make_interval(months => i))::timestamp AT TIME ZONE 'UTC',
                (month_start + make_interval(months => i + 1))::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;
SELECT profile.ensure_history_partitions(3);

CREATE TABLE profile.audit_logs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type       varchar(50)  NOT NULL,
    actor_id         varchar(100) NOT NULL,
    customer_id      varchar(50),
    application_id   varchar(50),
    operation        varchar(100) NOT NULL,
    old_value        jsonb,
    new_value        jsonb,
    ip_address       varchar(45),
    user_agent       text,
    trace_id         varchar(32),
    event_time       timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX ix_audit_customer ON profile.audit_logs (customer_id, event_time);
CREATE INDEX ix_audit_actor ON profile.audit_logs (actor_id, event_time);
CREATE INDEX ix_audit_time ON profile.audit_logs (event_time);

-- The audit log is append-only: no role may edit or remove an entry.
CREATE FUNCTION profile.audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON profile.audit_logs
    FOR EACH ROW EXECUTE FUNCTION profile.audit_logs_append_only();

CREATE TABLE profile.outbox (
    id                   uuid         PRIMARY KEY,
    seq                  bigserial    NOT NULL UNIQUE,
    aggregate_type       varchar(50)  NOT NULL,
    aggregate_id         varchar(64)  NOT NULL,
    event_type           varchar(100) NOT NULL,
    payload              jsonb        NOT NULL,
    headers              jsonb        NOT NULL,
    status               varchar(16)  NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'published', 'failed')),
    attempts             integer      NOT NULL DEFAULT 0,
    last_error           text,
    published_partition  integer,
    published_offset     bigint,
    created_at           timestamptz  NOT NULL DEFAULT now(),
    published_at         timestamptz
);
CREATE INDEX ix_outbox_pending ON profile.outbox (seq) WHERE status = 'pending';
CREATE INDEX ix_outbox_failed_key ON profile.outbox (aggregate_id) WHERE status = 'failed';
CREATE INDEX ix_outbox_aggregate ON profile.outbox (aggregate_id, seq);

CREATE FUNCTION profile.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('profile_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON profile.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION profile.outbox_notify();
"""

DOWNGRADE = r"""
DROP TABLE profile.outbox;
DROP FUNCTION profile.outbox_notify();
DROP TABLE profile.audit_logs;
DROP FUNCTION profile.audit_logs_append_only();
DROP TABLE profile.name_change_history;
DROP FUNCTION profile.ensure_history_partitions(integer);
DROP TABLE profile.name_change_applications;
DROP TABLE profile.customer_profiles;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

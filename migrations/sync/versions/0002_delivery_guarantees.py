"""Delivery guarantees: claims and lanes, dead letters, admin audit.

``external_sync_records`` gets the claim fencing token of the delivery in flight,
the record a parked delivery waits behind, the number of admin re-drives and the
CloudEvents headers of the source message (copied onto the dead-letter topic).
``customer_sync_state`` becomes the per-(system, customer) lane: it holds the
applied version and the one delivery in flight (record and lease end); its row
lock serialises every decision about that lane.
``dead_letters`` holds one row per record that ended ``failed`` (its own small
outbox for the dead-letter topic); ``admin_actions`` is the append-only audit
of admin retries.

Revision ID: sync_0002
Revises: sync_0001
"""

from migrations.env_common import execute_script

revision = "sync_0002"
down_revision = "sync_0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE sync.external_sync_records
    ADD COLUMN claim_token           uuid,
    ADD COLUMN blocked_by_record_id  bigint,
    ADD COLUMN redrive_count         integer NOT NULL DEFAULT 0,
    ADD COLUMN event_headers         jsonb   NOT NULL DEFAULT '{}'::jsonb;
-- Open records are found by the retry scheduler through next_attempt_at.
UPDATE sync.external_sync_records SET next_attempt_at = now()
    WHERE sync_status IN ('pending', 'retrying') AND next_attempt_at IS NULL;

DROP INDEX sync.ix_sync_due;
CREATE INDEX ix_sync_due ON sync.external_sync_records (system_code, next_attempt_at)
    WHERE sync_status IN ('pending', 'retrying');
-- The open records of one lane, oldest version first: who a new delivery waits behind.
CREATE INDEX ix_sync_open_lane ON sync.external_sync_records (system_code, customer_id, profile_version)
    WHERE sync_status IN ('pending', 'retrying');
DROP INDEX sync.ix_sync_customer;
CREATE INDEX ix_sync_customer ON sync.external_sync_records (customer_id, id);
CREATE INDEX ix_sync_system_status ON sync.external_sync_records (system_code, sync_status, id);

ALTER TABLE sync.customer_sync_state
    ALTER COLUMN applied_version DROP NOT NULL,
    ALTER COLUMN applied_event_id DROP NOT NULL,
    ADD COLUMN inflight_record_id bigint,
    ADD COLUMN inflight_until     timestamptz;
INSERT INTO sync.customer_sync_state (system_code, customer_id)
    SELECT DISTINCT system_code, customer_id FROM sync.external_sync_records
    ON CONFLICT DO NOTHING;

CREATE TABLE sync.dead_letters (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id              bigint       NOT NULL REFERENCES sync.external_sync_records (id),
    event_id               uuid         NOT NULL,
    system_code            varchar(20)  NOT NULL,
    customer_id            varchar(50)  NOT NULL,
    profile_version        integer      NOT NULL,
    reason                 varchar(32)  NOT NULL CHECK (reason IN ('retries_exhausted', 'rejected')),
    payload                jsonb        NOT NULL,
    headers                jsonb        NOT NULL,
    last_error             text,
    last_http_status       integer,
    attempts               integer      NOT NULL,
    created_at             timestamptz  NOT NULL DEFAULT now(),
    published_at           timestamptz,
    publish_claimed_until  timestamptz,
    publish_attempts       integer      NOT NULL DEFAULT 0,
    publish_error          text
);
CREATE INDEX ix_dead_letters_unpublished ON sync.dead_letters (id) WHERE published_at IS NULL;
CREATE INDEX ix_dead_letters_record ON sync.dead_letters (record_id);

CREATE TABLE sync.admin_actions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor           varchar(100) NOT NULL,
    ip              varchar(64),
    user_agent      text,
    channel         varchar(8)   NOT NULL CHECK (channel IN ('http', 'cli')),
    action          varchar(32)  NOT NULL,
    system_code     varchar(20),
    record_id       bigint,
    filter          jsonb        NOT NULL DEFAULT '{}'::jsonb,
    affected_count  integer      NOT NULL,
    details         jsonb        NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX ix_admin_actions_created ON sync.admin_actions (created_at);

CREATE FUNCTION sync.reject_admin_action_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sync.admin_actions is append-only';
END
$$;
CREATE TRIGGER admin_actions_append_only BEFORE UPDATE OR DELETE ON sync.admin_actions
    FOR EACH ROW EXECUTE FUNCTION sync.reject_admin_action_change();
CREATE TRIGGER admin_actions_no_truncate BEFORE TRUNCATE ON sync.admin_actions
    FOR EACH STATEMENT EXECUTE FUNCTION sync.reject_admin_action_change();
"""

DOWNGRADE = r"""
DROP TABLE sync.admin_actions;
DROP FUNCTION sync.reject_admin_action_change();
DROP TABLE sync.dead_letters;

DELETE FROM sync.customer_sync_state WHERE applied_version IS NULL;
ALTER TABLE sync.customer_sync_state
    DROP COLUMN inflight_until,
    DROP COLUMN inflight_record_id,
    ALTER COLUMN applied_event_id SET NOT NULL,
    ALTER COLUMN applied_version SET NOT NULL;

DROP INDEX sync.ix_sync_system_status;
DROP INDEX sync.ix_sync_customer;
CREATE INDEX ix_sync_customer ON sync.external_sync_records (customer_id, created_at);
DROP INDEX sync.ix_sync_open_lane;
DROP INDEX sync.ix_sync_due;
CREATE INDEX ix_sync_due ON sync.external_sync_records (next_attempt_at) WHERE sync_status = 'retrying';
ALTER TABLE sync.external_sync_records
    DROP COLUMN event_headers,
    DROP COLUMN redrive_count,
    DROP COLUMN blocked_by_record_id,
    DROP COLUMN claim_token;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

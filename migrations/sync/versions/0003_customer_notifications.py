"""Customer notifications: one record per (event, channel), every attempt.

``notification_records`` is to the notification sender what
``external_sync_records`` is to the external systems: written when the event
is read from Kafka (unique on event id + channel, so a redelivered event never
makes a second record, hence never a second message), then sent under a claim
(fencing token, lease in ``next_attempt_at``) by the channel's retry scheduler.
It holds what the message says (names, application id, time, from the event)
but never contact data: the sender fetches phone and e-mail from the profile
service at send time and forgets them.

Revision ID: sync_0003
Revises: sync_0002
"""

from migrations.env_common import execute_script

revision = "sync_0003"
down_revision = "sync_0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE sync.notification_records (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid         NOT NULL,
    channel          varchar(8)   NOT NULL CHECK (channel IN ('email', 'sms')),
    customer_id      varchar(50)  NOT NULL,
    application_id   varchar(50)  NOT NULL,
    status           varchar(24)  NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'retrying', 'sent', 'failed', 'skipped_no_contact', 'skipped_stale')),
    event            jsonb        NOT NULL,
    event_headers    jsonb        NOT NULL DEFAULT '{}'::jsonb,
    attempts         integer      NOT NULL DEFAULT 0,
    max_attempts     integer      NOT NULL,
    resend_count     integer      NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    claim_token      uuid,
    language         varchar(8),
    message_id       text,
    last_error       text,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    updated_at       timestamptz  NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT uq_notification_event_channel UNIQUE (event_id, channel)
);
CREATE INDEX ix_notification_due ON sync.notification_records (channel, next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX ix_notification_customer ON sync.notification_records (customer_id, id);
CREATE INDEX ix_notification_channel_status ON sync.notification_records (channel, status, id);

CREATE TABLE sync.notification_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id     bigint       NOT NULL REFERENCES sync.notification_records (id),
    attempt_no    integer      NOT NULL,
    outcome       varchar(16)  NOT NULL,
    error         text,
    duration_ms   double precision NOT NULL,
    attempted_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX ix_notification_attempts_record ON sync.notification_attempts (record_id);
"""

DOWNGRADE = r"""
DROP TABLE sync.notification_attempts;
DROP TABLE sync.notification_records;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

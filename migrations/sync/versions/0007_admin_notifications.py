"""Admin notifications (seed 000 6.2 notifyAdmin): one e-mail to the admins' list per cause and window.

``admin_notifications`` is one row per cause (a stable key such as ``dead-letter:CSS`` or
``parked-outbox``) and window: how many occurrences it counted, the first few as examples, and its
delivery state as a record of the delivery engine (status, attempts, claim token, next attempt,
deadline). A cause's first occurrence after its last window ended opens a window; later ones within it
only count, so one outage is one mail. ``admin_occurrences`` holds what was counted (one row per dead
letter, signal, parked row or open breaker), unique among the open ones per cause: seeing it again
counts nothing. A state that ends (a parked row re-driven) is resolved, so a later one counts anew.
Both are pruned with the connector's retention.

``admin_noted_at`` marks the dead letters, failed notifications and unprocessable messages already
counted (the watcher takes the unmarked ones and marks them in the transaction that counts them). Rows
that exist before this migration are taken as noted: history is not mailed.

Revision ID: sync_0007
Revises: sync_0006
"""

from migrations.env_common import execute_script

revision = "sync_0007"
down_revision = "sync_0006"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE sync.admin_notifications (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notice_id           uuid         NOT NULL UNIQUE,
    cause_key           varchar(100) NOT NULL,
    window_start        timestamptz  NOT NULL,
    window_end          timestamptz  NOT NULL,
    occurrences         integer      NOT NULL DEFAULT 0,
    occurrences_mailed  integer,
    first_seen_at       timestamptz  NOT NULL,
    last_seen_at        timestamptz  NOT NULL,
    examples            jsonb        NOT NULL DEFAULT '[]'::jsonb,
    status              varchar(16)  NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'retrying', 'sent', 'failed')),
    attempts            integer      NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    claim_token         uuid,
    deliver_by          timestamptz,
    message_id          text,
    last_error          text,
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    CONSTRAINT uq_admin_notification_window UNIQUE (cause_key, window_start)
);
CREATE INDEX ix_admin_notification_due ON sync.admin_notifications (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX ix_admin_notification_cause ON sync.admin_notifications (cause_key, window_end DESC);
CREATE INDEX ix_admin_notification_listing ON sync.admin_notifications (id DESC);

CREATE TABLE sync.admin_occurrences (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint       NOT NULL REFERENCES sync.admin_notifications (id) ON DELETE CASCADE,
    cause_key        varchar(100) NOT NULL,
    occurrence_key   text         NOT NULL,
    occurred_at      timestamptz  NOT NULL,
    resolved_at      timestamptz
);
CREATE UNIQUE INDEX uq_admin_occurrence_open ON sync.admin_occurrences (cause_key, occurrence_key)
    WHERE resolved_at IS NULL;
CREATE INDEX ix_admin_occurrence_notification ON sync.admin_occurrences (notification_id);

-- now() as the default marks the existing rows (no rewrite), then new rows start unmarked.
ALTER TABLE sync.dead_letters ADD COLUMN admin_noted_at timestamptz DEFAULT now();
ALTER TABLE sync.dead_letters ALTER COLUMN admin_noted_at DROP DEFAULT;
CREATE INDEX ix_dead_letters_unnoted ON sync.dead_letters (id) WHERE admin_noted_at IS NULL;
ALTER TABLE sync.unprocessable_messages ADD COLUMN admin_noted_at timestamptz DEFAULT now();
ALTER TABLE sync.unprocessable_messages ALTER COLUMN admin_noted_at DROP DEFAULT;
CREATE INDEX ix_unprocessable_unnoted ON sync.unprocessable_messages (id) WHERE admin_noted_at IS NULL;
ALTER TABLE sync.notification_records ADD COLUMN admin_noted_at timestamptz DEFAULT now();
ALTER TABLE sync.notification_records ALTER COLUMN admin_noted_at DROP DEFAULT;
CREATE INDEX ix_notification_failed_unnoted ON sync.notification_records (id)
    WHERE status = 'failed' AND admin_noted_at IS NULL;
"""

DOWNGRADE = r"""
DROP INDEX sync.ix_notification_failed_unnoted;
ALTER TABLE sync.notification_records DROP COLUMN admin_noted_at;
DROP INDEX sync.ix_unprocessable_unnoted;
ALTER TABLE sync.unprocessable_messages DROP COLUMN admin_noted_at;
DROP INDEX sync.ix_dead_letters_unnoted;
ALTER TABLE sync.dead_letters DROP COLUMN admin_noted_at;
DROP TABLE sync.admin_occurrences;
DROP TABLE sync.admin_notifications;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

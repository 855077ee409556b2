"""Admin signals: the failures of profile updates that need a person (seed 000 6.2 notifyAdmin), and
backup points taken automatically before a whole-ledger restore or a purge.

Revision ID: profile_0006
Revises: profile_0005

``admin_signals`` is a small queue the sync-connector's admin notifications read through the profile
service's internal API (``GET /internal/v1/admin-signals``) and empty (``POST .../noted``): one row per
failed update (operation log ``UPDATE_FAILED``, the application marked ``update_failed``) and per
update refused because of the application's status (``UPDATE_REFUSED``, ``INVALID_STATUS``). A trigger
on the operation log writes it, so a signal exists exactly when its log entry does (same transaction).
The code comes from the entry's ``new_value.failureCode``, else from its operation text
("profile update failed: CODE"). Rows leave the table once the connector has recorded them: its size
is the number of signals not yet seen.

``backups.kind`` gains ``pre_restore`` and ``pre_purge``.

Raw SQL only: a migration never imports code that can change later (DESIGN.md invariant 10).
"""

from migrations.env_common import execute_script

revision = "profile_0006"
down_revision = "profile_0005"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE profile.admin_signals (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             varchar(32)  NOT NULL CHECK (kind IN ('update_failed', 'update_refused')),
    code             varchar(40)  NOT NULL,
    application_id   varchar(50),
    customer_id      varchar(50),
    trace_id         varchar(32),
    audit_id         bigint       NOT NULL,
    occurred_at      timestamptz  NOT NULL
);

CREATE FUNCTION profile.audit_logs_admin_signal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO profile.admin_signals (kind, code, application_id, customer_id, trace_id, audit_id, occurred_at)
    VALUES (
        CASE NEW.event_type WHEN 'UPDATE_FAILED' THEN 'update_failed' ELSE 'update_refused' END,
        left(COALESCE(NEW.new_value ->> 'failureCode', substring(NEW.operation FROM ':\s*([A-Z_]+)\s*$'), 'UNKNOWN'), 40),
        NEW.application_id, NEW.customer_id, NEW.trace_id, NEW.id, NEW.event_time
    );
    RETURN NULL;
END $$;
CREATE TRIGGER audit_logs_admin_signal AFTER INSERT ON profile.audit_logs
    FOR EACH ROW WHEN (NEW.event_type IN ('UPDATE_FAILED', 'UPDATE_REFUSED'))
    EXECUTE FUNCTION profile.audit_logs_admin_signal();

ALTER TABLE profile.backups DROP CONSTRAINT backups_kind_check;
ALTER TABLE profile.backups ADD CONSTRAINT backups_kind_check
    CHECK (kind IN ('manual', 'scheduled', 'pre_restore', 'pre_purge'));
"""

DOWNGRADE = r"""
DELETE FROM profile.backups WHERE kind IN ('pre_restore', 'pre_purge');
ALTER TABLE profile.backups DROP CONSTRAINT backups_kind_check;
ALTER TABLE profile.backups ADD CONSTRAINT backups_kind_check CHECK (kind IN ('manual', 'scheduled'));
DROP TRIGGER audit_logs_admin_signal ON profile.audit_logs;
DROP FUNCTION profile.audit_logs_admin_signal();
DROP TABLE profile.admin_signals;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)

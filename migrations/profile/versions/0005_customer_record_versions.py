"""Seed 004's customer record in full, and every version of it kept.

Revision ID: profile_0005
Revises: profile_0004

The record gains the fields of seed 004's ``customers_backup_history``: ``customer_code``
(unique among live and recycled customers; existing customers take their id as code),
``customer_type``, ``contact_person``, ``company``, ``industry``, ``region``,
``credit_limit`` (numeric(15,2), never negative), ``sales_person``, the tax number (sealed
only: ``tax_number_encrypted``, like the contact data, never in plaintext), ``remark``,
``created_by``/``updated_by`` (the token subjects; ``created_by`` of existing customers comes
from their ``CUSTOMER_CREATED`` operation-log entry) and ``change_kind`` (what made the
current version). Backup copies get the same columns.

``customer_versions`` keeps the whole row at every version: a trigger copies the row (sealed
columns as stored) whenever one is inserted or its ``version`` changes, whatever statement
wrote it. Existing customers start with one ``baseline`` version, their state now. A
version row is immutable except for re-sealing under another key (key rotation).

Raw SQL only: a migration never imports code that can change later (DESIGN.md invariant 10).
"""

from migrations.env_common import execute_script

revision = "profile_0005"
down_revision = "profile_0004"
branch_labels = None
depends_on = None

# Every column of profile.customer_profiles after this migration, in table order: the
# version trigger copies each. A later migration that adds a column to customer_profiles
# adds it to customer_versions and to this trigger too (tests compare the column sets).
PROFILE_COLUMNS = (
    "customer_id",
    "customer_name",
    "account_type",
    "status",
    "version",
    "created_at",
    "updated_at",
    "deleted_at",
    "contact_phone_encrypted",
    "contact_email_encrypted",
    "contact_address_encrypted",
    "contact_key_id",
    "contact_phone_hash",
    "contact_digest",
    "customer_code",
    "customer_type",
    "contact_person",
    "company",
    "industry",
    "region",
    "credit_limit",
    "sales_person",
    "tax_number_encrypted",
    "remark",
    "created_by",
    "updated_by",
    "change_kind",
)
# Columns a key rotation may re-seal in an otherwise immutable copy (backup point, version).
SEALED_COLUMNS = (
    "contact_phone_encrypted",
    "contact_email_encrypted",
    "contact_address_encrypted",
    "tax_number_encrypted",
    "contact_key_id",
    "contact_phone_hash",
    "contact_digest",
)
CHANGE_KINDS = (
    "baseline",
    "create",
    "edit",
    "name_change",
    "delete",
    "undelete",
    "rollback",
    "backup_restore",
)

_NEW_COLUMNS = """
    ADD COLUMN customer_code         varchar(100),
    ADD COLUMN customer_type         varchar(50)    NOT NULL DEFAULT 'regular',
    ADD COLUMN contact_person        varchar(100),
    ADD COLUMN company               varchar(200),
    ADD COLUMN industry              varchar(100),
    ADD COLUMN region                varchar(100),
    ADD COLUMN credit_limit          numeric(15, 2) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    ADD COLUMN sales_person          varchar(100),
    ADD COLUMN tax_number_encrypted  bytea,
    ADD COLUMN remark                text,
    ADD COLUMN created_by            varchar(100),
    ADD COLUMN updated_by            varchar(100)"""

_KINDS = ", ".join(f"'{kind}'" for kind in CHANGE_KINDS)
_SEALED = ", ".join(f"'{name}'" for name in SEALED_COLUMNS)
_COLUMNS = ", ".join(PROFILE_COLUMNS)
_NEW_VALUES = ", ".join(f"NEW.{name}" for name in PROFILE_COLUMNS)

# Composed of this module's constants only.
UPGRADE = rf"""
ALTER TABLE profile.customer_profiles {_NEW_COLUMNS},
    -- Existing rows are the state at this migration; new rows say what made them.
    ADD COLUMN change_kind varchar(20) NOT NULL DEFAULT 'baseline' CHECK (change_kind IN ({_KINDS}));
ALTER TABLE profile.customer_profiles ALTER COLUMN change_kind SET DEFAULT 'create';

UPDATE profile.customer_profiles p
SET customer_code = p.customer_id,
    created_by = (
        SELECT a.actor_id FROM profile.audit_logs a
        WHERE a.customer_id = p.customer_id AND a.event_type = 'CUSTOMER_CREATED'
        ORDER BY a.id LIMIT 1
    );
ALTER TABLE profile.customer_profiles ALTER COLUMN customer_code SET NOT NULL;
-- Unique among live and recycled customers. Deferrable (checked at the end of each statement,
-- or at commit where a transaction defers it), so a restore can swap two customers' codes.
ALTER TABLE profile.customer_profiles ADD CONSTRAINT customer_profiles_customer_code_key
    UNIQUE (customer_code) DEFERRABLE INITIALLY IMMEDIATE;
-- Exact-match filters of the listing, in its keyset order.
CREATE INDEX ix_customer_profiles_industry ON profile.customer_profiles (industry, created_at, customer_id)
    WHERE deleted_at IS NULL AND industry IS NOT NULL;
CREATE INDEX ix_customer_profiles_region ON profile.customer_profiles (region, created_at, customer_id)
    WHERE deleted_at IS NULL AND region IS NOT NULL;
CREATE INDEX ix_customer_profiles_sales_person ON profile.customer_profiles (sales_person, created_at, customer_id)
    WHERE deleted_at IS NULL AND sales_person IS NOT NULL;

-- A row written without a code (a bulk load) takes its id as code, as the API does.
CREATE FUNCTION profile.customer_profiles_default_code() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.customer_code := coalesce(NEW.customer_code, NEW.customer_id);
    RETURN NEW;
END $$;
CREATE TRIGGER customer_profiles_default_code BEFORE INSERT ON profile.customer_profiles
    FOR EACH ROW EXECUTE FUNCTION profile.customer_profiles_default_code();

-- Backup copies: the same columns (codes of older copies stay NULL: their customer id).
ALTER TABLE profile.backup_customers {_NEW_COLUMNS},
    ADD COLUMN change_kind varchar(20);

-- Every version of every customer, as the row was at that version.
CREATE TABLE profile.customer_versions (
    customer_id                varchar(50)    NOT NULL,
    customer_name              varchar(100)   NOT NULL,
    account_type               varchar(16)    NOT NULL,
    status                     varchar(16)    NOT NULL,
    version                    integer        NOT NULL,
    created_at                 timestamptz    NOT NULL,
    updated_at                 timestamptz    NOT NULL,
    deleted_at                 timestamptz,
    contact_phone_encrypted    bytea,
    contact_email_encrypted    bytea,
    contact_address_encrypted  bytea,
    contact_key_id             varchar(32),
    contact_phone_hash         bytea,
    contact_digest             bytea,
    customer_code              varchar(100)   NOT NULL,
    customer_type              varchar(50)    NOT NULL,
    contact_person             varchar(100),
    company                    varchar(200),
    industry                   varchar(100),
    region                     varchar(100),
    credit_limit               numeric(15, 2) NOT NULL,
    sales_person               varchar(100),
    tax_number_encrypted       bytea,
    remark                     text,
    created_by                 varchar(100),
    updated_by                 varchar(100),
    change_kind                varchar(20)    NOT NULL,
    PRIMARY KEY (customer_id, version)
);
CREATE INDEX ix_customer_versions_contact_key ON profile.customer_versions (contact_key_id);

INSERT INTO profile.customer_versions ({_COLUMNS})
SELECT {_COLUMNS} FROM profile.customer_profiles;

CREATE FUNCTION profile.customer_profiles_keep_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO profile.customer_versions ({_COLUMNS}) VALUES ({_NEW_VALUES});
    RETURN NULL;
END $$;
CREATE TRIGGER customer_profiles_keep_version_insert AFTER INSERT ON profile.customer_profiles
    FOR EACH ROW EXECUTE FUNCTION profile.customer_profiles_keep_version();
CREATE TRIGGER customer_profiles_keep_version_update AFTER UPDATE ON profile.customer_profiles
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION profile.customer_profiles_keep_version();

-- Backup copies and versions are immutable, except that a key rotation re-seals their
-- sealed columns; every other column, present or added later, must stay as it was.
CREATE OR REPLACE FUNCTION profile.backup_customers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) - ARRAY[{_SEALED}]) = (to_jsonb(OLD) - ARRAY[{_SEALED}]) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'backup_customers is immutable' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE FUNCTION profile.customer_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) - ARRAY[{_SEALED}]) = (to_jsonb(OLD) - ARRAY[{_SEALED}]) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'customer_versions is immutable' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER customer_versions_immutable BEFORE UPDATE ON profile.customer_versions
    FOR EACH ROW EXECUTE FUNCTION profile.customer_versions_immutable();

-- A name changed by a rollback gets a completed application of its own origin, like an edit's.
ALTER TABLE profile.name_change_applications DROP CONSTRAINT name_change_applications_origin_check;
ALTER TABLE profile.name_change_applications ADD CONSTRAINT name_change_applications_origin_check
    CHECK (origin IN ('application', 'profile_edit', 'backup_restore', 'version_rollback'));
"""  # noqa: S608

# profile_0004's immutability of backup copies, as it was.
DOWNGRADE = r"""
UPDATE profile.name_change_applications SET origin = 'profile_edit' WHERE origin = 'version_rollback';
ALTER TABLE profile.name_change_applications DROP CONSTRAINT name_change_applications_origin_check;
ALTER TABLE profile.name_change_applications ADD CONSTRAINT name_change_applications_origin_check
    CHECK (origin IN ('application', 'profile_edit', 'backup_restore'));

DROP TRIGGER customer_versions_immutable ON profile.customer_versions;
DROP FUNCTION profile.customer_versions_immutable();
DROP TRIGGER customer_profiles_keep_version_update ON profile.customer_profiles;
DROP TRIGGER customer_profiles_keep_version_insert ON profile.customer_profiles;
DROP FUNCTION profile.customer_profiles_keep_version();
DROP TABLE profile.customer_versions;
DROP TRIGGER customer_profiles_default_code ON profile.customer_profiles;
DROP FUNCTION profile.customer_profiles_default_code();

CREATE OR REPLACE FUNCTION profile.backup_customers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.backup_id, NEW.customer_id, NEW.customer_name, NEW.account_type, NEW.status, NEW.version,
        NEW.created_at, NEW.updated_at, NEW.deleted_at)
       IS NOT DISTINCT FROM
       (OLD.backup_id, OLD.customer_id, OLD.customer_name, OLD.account_type, OLD.status, OLD.version,
        OLD.created_at, OLD.updated_at, OLD.deleted_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'backup_customers is immutable' USING ERRCODE = 'insufficient_privilege';
END $$;

DROP INDEX profile.ix_customer_profiles_sales_person;
DROP INDEX profile.ix_customer_profiles_region;
DROP INDEX profile.ix_customer_profiles_industry;
ALTER TABLE profile.customer_profiles DROP CONSTRAINT customer_profiles_customer_code_key;
"""

_DROP_COLUMNS = """
    DROP COLUMN customer_code, DROP COLUMN customer_type, DROP COLUMN contact_person, DROP COLUMN company,
    DROP COLUMN industry, DROP COLUMN region, DROP COLUMN credit_limit, DROP COLUMN sales_person,
    DROP COLUMN tax_number_encrypted, DROP COLUMN remark, DROP COLUMN created_by, DROP COLUMN updated_by,
    DROP COLUMN change_kind"""

DOWNGRADE_COLUMNS = f"""
ALTER TABLE profile.customer_profiles {_DROP_COLUMNS};
ALTER TABLE profile.backup_customers {_DROP_COLUMNS};
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
    execute_script(DOWNGRADE_COLUMNS)

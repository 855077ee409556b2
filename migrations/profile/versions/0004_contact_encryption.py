"""Contact data sealed at rest: ciphertext, key id, phone hash and digest columns; plaintext migrated and dropped.

Revision ID: profile_0004
Revises: profile_0003

Rows that already hold plaintext contact data (live profiles, backup copies, stored
Idempotency-Key responses) are sealed in this migration, which then needs the keys:
``python -m services.profile migrate`` passes ``PROFILE_CRYPTO_*`` (``make run`` passes the
dev keys). On an empty ledger no key is needed. The downgrade opens them again (same keys).
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from alembic import context, op
from sqlalchemy import ColumnElement, bindparam, column, func, literal, select, table, text, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnClause, TableClause

from migrations.env_common import execute_script
from migrations.profile.sealing_v1 import CONTACT_FIELDS, STORED_COLUMNS, ContactSealer

revision = "profile_0004"
down_revision = "profile_0003"
branch_labels = None
depends_on = None

BATCH = 1_000
_TABLES = ("customer_profiles", "backup_customers")
_KEYS = {"customer_profiles": ("customer_id",), "backup_customers": ("backup_id", "customer_id")}

_ADD_SEALED = """
    ADD COLUMN contact_phone_encrypted   bytea,
    ADD COLUMN contact_email_encrypted   bytea,
    ADD COLUMN contact_address_encrypted bytea,
    ADD COLUMN contact_key_id            varchar(32),
    ADD COLUMN contact_phone_hash        bytea,
    ADD COLUMN contact_digest            bytea"""

UPGRADE_SCHEMA = f"""
ALTER TABLE profile.customer_profiles {_ADD_SEALED};
ALTER TABLE profile.backup_customers {_ADD_SEALED};
ALTER TABLE profile.idempotency_keys ADD COLUMN response_key_id varchar(32);
-- A phone search is an equality on the keyed hash; a key rotation finds rows by key id.
CREATE INDEX ix_customer_profiles_phone_hash ON profile.customer_profiles (contact_phone_hash)
    WHERE contact_phone_hash IS NOT NULL;
CREATE INDEX ix_customer_profiles_contact_key ON profile.customer_profiles (contact_key_id);
CREATE INDEX ix_backup_customers_contact_key ON profile.backup_customers (contact_key_id);
CREATE INDEX ix_idempotency_keys_response_key ON profile.idempotency_keys (response_key_id)
    WHERE response_key_id IS NOT NULL;

-- A backup point stays immutable, except that its contact data may be sealed again under
-- another key (key rotation): every other column must stay as it was.
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
"""

DROP_PLAINTEXT = """
ALTER TABLE profile.customer_profiles DROP COLUMN contact_phone, DROP COLUMN contact_email, DROP COLUMN contact_address;
ALTER TABLE profile.backup_customers DROP COLUMN contact_phone, DROP COLUMN contact_email, DROP COLUMN contact_address;
"""

DOWNGRADE_SCHEMA = """
ALTER TABLE profile.customer_profiles
    ADD COLUMN contact_phone varchar(20), ADD COLUMN contact_email varchar(254), ADD COLUMN contact_address text;
ALTER TABLE profile.backup_customers
    ADD COLUMN contact_phone varchar(20), ADD COLUMN contact_email varchar(254), ADD COLUMN contact_address text;
"""

DROP_SEALED = """
DROP INDEX profile.ix_idempotency_keys_response_key;
DROP INDEX profile.ix_backup_customers_contact_key;
DROP INDEX profile.ix_customer_profiles_contact_key;
DROP INDEX profile.ix_customer_profiles_phone_hash;
ALTER TABLE profile.idempotency_keys DROP COLUMN response_key_id;
ALTER TABLE profile.customer_profiles DROP COLUMN contact_phone_encrypted, DROP COLUMN contact_email_encrypted,
    DROP COLUMN contact_address_encrypted, DROP COLUMN contact_key_id, DROP COLUMN contact_phone_hash,
    DROP COLUMN contact_digest;
ALTER TABLE profile.backup_customers DROP COLUMN contact_phone_encrypted, DROP COLUMN contact_email_encrypted,
    DROP COLUMN contact_address_encrypted, DROP COLUMN contact_key_id, DROP COLUMN contact_phone_hash,
    DROP COLUMN contact_digest;
CREATE OR REPLACE FUNCTION profile.backup_customers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'backup_customers is immutable' USING ERRCODE = 'insufficient_privilege';
END $$;
"""


def _protector(rows_needing_keys: int) -> ContactSealer | None:
    # The service's CryptoSettings (keys, active_key_id, hash_key), read without importing its class.
    settings = context.config.attributes.get("profile_crypto")
    if getattr(settings, "keys", None):
        return ContactSealer.from_settings(settings)
    if rows_needing_keys:
        msg = (
            f"{rows_needing_keys} rows hold contact data or stored responses to seal or open: "
            "run the migration with PROFILE_CRYPTO_KEYS, PROFILE_CRYPTO_ACTIVE_KEY_ID and PROFILE_CRYPTO_HASH_KEY set "
            "(python -m services.profile migrate)"
        )
        raise RuntimeError(msg)
    return None


_ALL_COLUMNS = ("backup_id", "customer_id", *CONTACT_FIELDS, *STORED_COLUMNS)


def _table(name: str) -> TableClause:
    columns: list[ColumnClause[Any]] = [
        column(c) for c in _ALL_COLUMNS if c != "backup_id" or name == "backup_customers"
    ]
    return table(name, *columns, schema="profile")


def _count(bind: Connection, name: str, *where: ColumnElement[bool]) -> int:
    t = _table(name)
    return int(bind.execute(select(func.count()).select_from(t).where(*where)).scalar_one())


def _batches(bind: Connection, name: str, columns: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
    """Rows in primary-key order, ``BATCH`` at a time (keyset, so updates behind us do not matter)."""
    t = _table(name)
    keys = [t.c[k] for k in _KEYS[name]]
    after: tuple[Any, ...] | None = None
    while True:
        query = select(*keys, *(t.c[c] for c in columns if c not in _KEYS[name])).order_by(*keys).limit(BATCH)
        if after is not None:
            query = query.where(tuple_(*keys) > tuple_(*(literal(v) for v in after)))
        rows = [dict(row) for row in bind.execute(query).mappings()]
        if not rows:
            return
        yield rows
        after = tuple(rows[-1][k] for k in _KEYS[name])


def _rewrite(
    bind: Connection, name: str, read: Sequence[str], write: Callable[[dict[str, Any]], Mapping[str, Any]]
) -> None:
    t = _table(name)
    keys = _KEYS[name]
    for rows in _batches(bind, name, read):
        updates = [{**{f"key_{k}": row[k] for k in keys}, **write(row)} for row in rows]
        written = [c for c in updates[0] if not c.startswith("key_")]
        statement = (
            update(t).where(*(t.c[k] == bindparam(f"key_{k}") for k in keys)).values({c: bindparam(c) for c in written})
        )
        bind.execute(statement, updates)


def upgrade() -> None:
    execute_script(UPGRADE_SCHEMA)
    bind = op.get_bind()
    rows = sum(_count(bind, name) for name in _TABLES) + _stored_responses(bind)
    protector = _protector(rows)
    if protector is not None:
        for name in _TABLES:
            _rewrite(bind, name, CONTACT_FIELDS, lambda row: protector.seal(row["customer_id"], row))
        _seal_responses(bind, protector)
    execute_script(DROP_PLAINTEXT)


def _stored_responses(bind: Connection) -> int:
    return int(
        bind.execute(text("SELECT count(*) FROM profile.idempotency_keys WHERE response_body IS NOT NULL")).scalar_one()
    )


def _seal_responses(bind: Connection, protector: ContactSealer) -> None:
    stored = bind.execute(
        text(
            "SELECT scope, idempotency_key, response_body FROM profile.idempotency_keys WHERE response_body IS NOT NULL"
        )
    ).mappings()
    for row in list(stored):
        sealed, key_id = protector.seal_response(row["scope"], row["idempotency_key"], bytes(row["response_body"]))
        bind.execute(
            text(
                "UPDATE profile.idempotency_keys SET response_body = :body, response_key_id = :kid "
                "WHERE scope = :scope AND idempotency_key = :key"
            ),
            {"body": sealed, "kid": key_id, "scope": row["scope"], "key": row["idempotency_key"]},
        )


def downgrade() -> None:
    execute_script(DOWNGRADE_SCHEMA)
    bind = op.get_bind()
    sealed_rows = sum(_count(bind, name, column("contact_key_id").is_not(None)) for name in _TABLES)
    sealed_rows += _stored_responses(bind)
    protector = _protector(sealed_rows)
    if protector is not None:
        for name in _TABLES:
            _rewrite(bind, name, STORED_COLUMNS, protector.open)
        responses = bind.execute(
            text(
                "SELECT scope, idempotency_key, response_body FROM profile.idempotency_keys WHERE response_key_id IS NOT NULL"
            )
        ).mappings()
        for row in list(responses):
            body = protector.open_response(row["scope"], row["idempotency_key"], bytes(row["response_body"]))
            bind.execute(
                text(
                    "UPDATE profile.idempotency_keys SET response_body = :body WHERE scope = :scope AND idempotency_key = :key"
                ),
                {"body": body, "scope": row["scope"], "key": row["idempotency_key"]},
            )
    execute_script(DROP_SEALED)

"""SQLAlchemy Core tables of the profile schema (the DDL lives in the migrations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from libs.outbox.table import outbox_table

SCHEMA = "profile"
metadata = MetaData(schema=SCHEMA)


def _profile_columns(*, versioned: bool = False) -> list[Column[Any]]:
    """The columns of a customer profile (live table, backup copies and versions alike)."""
    return [
        Column("customer_id", String(50), primary_key=True),
        Column("customer_name", String(100), nullable=False),
        # Contact data only sealed (shared/storage/contact_crypto.py), never in plaintext.
        Column("contact_phone_encrypted", LargeBinary),
        Column("contact_email_encrypted", LargeBinary),
        Column("contact_address_encrypted", LargeBinary),
        Column("contact_key_id", String(32)),
        Column("contact_phone_hash", LargeBinary),
        Column("contact_digest", LargeBinary),
        Column("account_type", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("version", Integer, nullable=False, primary_key=versioned),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("deleted_at", DateTime(timezone=True)),
        # Seed 004's record (migration profile_0005); the tax number only sealed, like the contact data.
        Column("customer_code", String(100)),
        Column("customer_type", String(50), nullable=False),
        Column("contact_person", String(100)),
        Column("company", String(200)),
        Column("industry", String(100)),
        Column("region", String(100)),
        Column("credit_limit", Numeric(15, 2, asdecimal=True), nullable=False),
        Column("sales_person", String(100)),
        Column("tax_number_encrypted", LargeBinary),
        Column("remark", Text),
        Column("created_by", String(100)),
        Column("updated_by", String(100)),
        Column("change_kind", String(20)),
    ]


customer_profiles = Table("customer_profiles", metadata, *_profile_columns())

# The whole row at every version, written by a trigger on customer_profiles (migration profile_0005).
customer_versions = Table("customer_versions", metadata, *_profile_columns(versioned=True))

name_change_applications = Table(
    "name_change_applications",
    metadata,
    Column("application_id", String(50), primary_key=True),
    Column("customer_id", String(50), nullable=False),
    Column("old_name", String(100), nullable=False),
    Column("new_name", String(100), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("profile_version", Integer, nullable=False),
    Column("auditor_id", String(50)),
    Column("audit_comment", Text),
    Column("decided_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("failure_code", String(40)),
    Column("failure_detail", Text),
    Column("update_result", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("origin", String(16), nullable=False),
)

name_change_history = Table(
    "name_change_history",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("customer_id", String(50), nullable=False),
    Column("application_id", String(50), nullable=False),
    Column("old_name", String(100), nullable=False),
    Column("new_name", String(100), nullable=False),
    Column("change_reason", Text),
    Column("profile_version", Integer, nullable=False),
    Column("change_date", DateTime(timezone=True), primary_key=True),
    Column("operator_id", String(50), nullable=False),
    Column("operator_name", String(100)),
)

audit_logs = Table(
    "audit_logs",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("event_type", String(50), nullable=False),
    Column("actor_id", String(100), nullable=False),
    Column("customer_id", String(50)),
    Column("application_id", String(50)),
    Column("operation", String(100), nullable=False),
    Column("old_value", JSONB),
    Column("new_value", JSONB),
    Column("ip_address", String(45)),
    Column("user_agent", Text),
    Column("trace_id", String(32)),
    Column("event_time", DateTime(timezone=True), nullable=False),
)

purged_customers = Table(
    "purged_customers",
    metadata,
    Column("customer_id", String(50), primary_key=True),
    Column("last_version", Integer, nullable=False),
    Column("purged_at", DateTime(timezone=True), nullable=False),
)

backups = Table(
    "backups",
    metadata,
    Column("backup_id", String(50), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("label", String(200)),
    Column("created_by", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("customer_count", Integer, nullable=False),
    Column("deleted_count", Integer, nullable=False),
)

# The same columns as customer_profiles, per backup point.
backup_customers = Table(
    "backup_customers",
    metadata,
    Column("backup_id", String(50), primary_key=True),
    *_profile_columns(),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(300), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("status_code", Integer),
    Column("response_headers", JSONB),
    Column("response_body", LargeBinary),  # sealed: a response may carry contact data
    Column("response_key_id", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata, SCHEMA)

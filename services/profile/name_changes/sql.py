"""The approval hot path: one locking read and one write statement per name change.

An approval used to cost ten statements, each a round trip; the profile service was
CPU-bound on them (SQLAlchemy execution, socket writes). Here the application and its
customer are read and locked with one join, and every row the change writes (profile,
completed application, history, audit entries, outbox event) goes in one statement of
data-modifying CTEs, prepared once per connection and run on the unit of work's
asyncpg connection, inside its transaction.
"""

from __future__ import annotations

from typing import Any, cast

import asyncpg
import msgspec
from opentelemetry import trace
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.outbox.writer import OutboxInsert
from services.profile.domain.model import Customer, NameChangeApplication
from services.profile.shared.ports import AuditEntry, CompletedNameChange
from services.profile.shared.storage.contact_crypto import ContactProtector
from services.profile.shared.storage.repositories import application_from_row, customer_from_row
from services.profile.shared.storage.tables import SCHEMA, customer_profiles, name_change_applications

_CUSTOMER_PREFIX = "customer__"
_CUSTOMER_COLUMNS = tuple(column.name for column in customer_profiles.c)
_LOCK_QUERY = (
    select(
        name_change_applications,
        *(column.label(_CUSTOMER_PREFIX + column.name) for column in customer_profiles.c),
    )
    .join(customer_profiles, customer_profiles.c.customer_id == name_change_applications.c.customer_id)
    .where(name_change_applications.c.application_id == bindparam("application_id"))
    # Rows are locked in FROM order: the application first, then the customer, as every other writer does.
    .with_for_update()
)  # one statement object: SQLAlchemy computes its cache key once, not per approval

# The outbox row is libs.outbox's (its columns and their encoding), from parameter $25 on.
_OUTBOX_INSERT = OutboxInsert(SCHEMA, first_parameter=25)
# The CTEs all see the snapshot the statement starts with; none reads what another writes.
WRITE_NAME_CHANGE_SQL = f"""
WITH application AS (
    UPDATE profile.name_change_applications
    SET status = $2, auditor_id = $3, audit_comment = $4, decided_at = $5, completed_at = $6,
        updated_at = $6, update_result = $7, failure_code = NULL, failure_detail = NULL
    WHERE application_id = $1
), customer AS (
    -- The profile update after an approval is the system's, as the name history says (operator_id $13).
    UPDATE profile.customer_profiles
    SET customer_name = $9, version = $10, updated_at = $6, updated_by = $13, change_kind = 'name_change'
    WHERE customer_id = $8
), history AS (
    INSERT INTO profile.name_change_history
        (customer_id, application_id, old_name, new_name, change_reason, profile_version,
         change_date, operator_id, operator_name)
    VALUES ($8, $1, $11, $9, $12, $10, $6, $13, $14)
), audit AS (
    INSERT INTO profile.audit_logs
        (event_type, actor_id, customer_id, application_id, operation, old_value, new_value,
         ip_address, user_agent, trace_id, event_time)
    SELECT e.event_type, e.actor_id, e.customer_id, e.application_id, e.operation, e.old_value,
           e.new_value, e.ip_address, e.user_agent, e.trace_id, $6
    FROM unnest(
        $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::jsonb[], $21::jsonb[],
        $22::text[], $23::text[], $24::text[]
    ) WITH ORDINALITY AS e(event_type, actor_id, customer_id, application_id, operation, old_value,
                           new_value, ip_address, user_agent, trace_id, position)
    ORDER BY e.position
)
{_OUTBOX_INSERT.sql}
"""  # noqa: S608 - composed of constants; every value is a parameter

_AUDIT_COLUMNS = (
    "event_type",
    "actor_id",
    "customer_id",
    "application_id",
    "operation",
    "old_value",
    "new_value",
    "ip_address",
    "user_agent",
    "trace_id",
)
_JSON_AUDIT_COLUMNS = frozenset({"old_value", "new_value"})
_tracer = trace.get_tracer(__name__)


def _json(value: object) -> str:
    """jsonb parameters as JSON text (the codec SQLAlchemy registers on its asyncpg connections)."""
    return msgspec.json.encode(value).decode()


def _audit_arrays(entries: list[AuditEntry] | tuple[AuditEntry, ...]) -> list[list[Any]]:
    arrays: list[list[Any]] = []
    for column in _AUDIT_COLUMNS:
        values = [getattr(entry, column) for entry in entries]
        if column in _JSON_AUDIT_COLUMNS:
            values = [None if value is None else _json(value) for value in values]
        arrays.append(values)
    return arrays


class SqlNameChangeLedger:
    def __init__(self, connection: AsyncConnection, protector: ContactProtector) -> None:
        self._connection = connection
        self._protector = protector

    async def lock(self, application_id: str) -> tuple[NameChangeApplication, Customer] | None:
        row = (await self._connection.execute(_LOCK_QUERY, {"application_id": application_id})).mappings().first()
        if row is None:
            return None
        customer_row = {name: row[_CUSTOMER_PREFIX + name] for name in _CUSTOMER_COLUMNS}
        return application_from_row(row), customer_from_row(customer_row, self._protector)

    async def write(self, completed: CompletedNameChange) -> None:
        driver = cast("asyncpg.Connection", (await self._connection.get_raw_connection()).driver_connection)
        # A statement outside the unit of work's transaction would commit on its own (invariant 1).
        if not driver.is_in_transaction():
            msg = "name change written outside a transaction"
            raise RuntimeError(msg)
        application, history, message = completed.application, completed.history, completed.message
        with _tracer.start_as_current_span("profile.write_name_change", attributes={"db.system": "postgresql"}):
            await driver.execute(
                WRITE_NAME_CHANGE_SQL,
                application.application_id,
                application.status.value,
                application.auditor_id,
                application.audit_comment,
                application.decided_at,
                completed.change.changed_at,
                _json(completed.stored_result),
                application.customer_id,
                application.new_name,
                completed.change.new_version,
                history.old_name,
                history.change_reason,
                history.operator_id,
                history.operator_name,
                *_audit_arrays(tuple(completed.audit)),
                *_OUTBOX_INSERT.parameters(message),
            )

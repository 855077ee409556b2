"""What every committed name change writes besides the profile row, whatever its origin.

``name_change_rows`` builds them for one change: a history row, the update result stored
with the completed application, and an outbox event carrying the new profile version
(invariant 1). An approval writes them with its one write statement (name_changes/
sql.py); a profile edit and a restore from a backup, whose applications
are new, go through ``record_name_changes``: one statement per table for many changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TypedDict

import msgspec

from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, CustomerNameChanged
from libs.kit.telemetry import current_trace_headers
from libs.outbox.writer import OutboxMessage
from services.profile.domain.model import (
    SYSTEM_OPERATOR_ID,
    SYSTEM_OPERATOR_NAME,
    ApplicationOrigin,
    NameChange,
    NameChangeApplication,
)
from services.profile.shared.ports import HistoryEntry, ProfileUnitOfWork
from services.profile.shared.results import UpdateResult


def new_application_id() -> str:
    return f"APP-{uuid.uuid4().hex}"


async def record_name_changes(uow: ProfileUnitOfWork, changes: Sequence[NameChange]) -> list[UpdateResult]:
    """Completed applications (inserted so), history and outbox events of ``changes``.

    The profile rows are the caller's (an edit or a restore writes every field).
    """
    if not changes:
        return []
    trace_context = current_trace_headers()
    history: list[HistoryEntry] = []
    results: list[UpdateResult] = []
    messages: list[OutboxMessage] = []
    for change in changes:
        entry, result, message = name_change_rows(change, trace_context)
        history.append(entry)
        results.append(result)
        messages.append(message)
    stored = [msgspec.to_builtins(result) for result in results]
    await uow.applications.add_many([c.application.completed(c.changed_at) for c in changes], stored)
    await uow.history.add_many(history)
    await uow.outbox.add_many(messages)
    return results


class _Renamed(TypedDict):
    """What the history row, the update result and the event all say of one name change."""

    customer_id: str
    application_id: str
    old_name: str
    new_name: str
    profile_version: int


def _renamed(change: NameChange) -> _Renamed:
    application = change.application
    return _Renamed(
        customer_id=application.customer_id,
        application_id=application.application_id,
        old_name=application.old_name,
        new_name=application.new_name,
        profile_version=change.new_version,
    )


def name_change_rows(
    change: NameChange, trace_context: Mapping[str, str]
) -> tuple[HistoryEntry, UpdateResult, OutboxMessage]:
    """The history row, the update result and the outbox event of one change (a new event id)."""
    application = change.application
    event_id = uuid.uuid4()
    renamed = _renamed(change)
    history = HistoryEntry(
        **renamed, change_reason=application.reason, change_date=change.changed_at, **_operator(application)
    )
    result = UpdateResult(success=True, **renamed, update_time=change.changed_at, event_id=str(event_id))
    return history, result, name_changed_message(event_id, change, trace_context)


_OPERATOR_NAMES = {
    ApplicationOrigin.PROFILE_EDIT: "Profile edit",
    ApplicationOrigin.BACKUP_RESTORE: "Backup restore",
    ApplicationOrigin.VERSION_ROLLBACK: "Version rollback",
}


def _operator(application: NameChangeApplication) -> dict[str, str]:
    """The automatic update after an approval is the system's; an edit or a restore is the staff member's."""
    if application.origin is ApplicationOrigin.APPLICATION or application.auditor_id is None:
        return {"operator_id": SYSTEM_OPERATOR_ID, "operator_name": SYSTEM_OPERATOR_NAME}
    return {"operator_id": application.auditor_id, "operator_name": _OPERATOR_NAMES[application.origin]}


def name_changed_message(event_id: uuid.UUID, change: NameChange, trace_context: Mapping[str, str]) -> OutboxMessage:
    application = change.application
    event = CustomerNameChanged(**_renamed(change), reason=application.reason, changed_at=change.changed_at)
    attributes = CloudEventAttributes(
        id=str(event_id),
        source=EVENT_SOURCE,
        type=NAME_CHANGED_TYPE,
        time=change.changed_at,
        subject=application.customer_id,
    )
    return OutboxMessage(
        id=event_id,
        aggregate_type="customer",
        aggregate_id=application.customer_id,
        event_type=NAME_CHANGED_TYPE,
        payload=msgspec.to_builtins(event),
        headers=kafka_headers(attributes, trace_context),
        created_at=change.changed_at,
    )

"""The name-change use cases on the in-memory adapters (``fake_services``): no database, milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from services.profile.bootstrap import ProfileServices
from services.profile.customers.service import NewCustomer
from services.profile.domain.errors import ConcurrencyConflict, InvalidStatus
from services.profile.domain.ledger import ProfileChanges
from services.profile.domain.model import AccountType, ApplicationStatus, Decision, NameChangeApplication
from services.profile.shared.audit import AuditEvent
from services.profile.shared.results import Actor, UpdateResult
from tests.fakes.profile_adapters import FakeAdapters, FakeClock, fake_services

CLERK, AUDITOR = "clerk-1", "auditor-1"
Services = ProfileServices[FakeAdapters]


@pytest.fixture
def services() -> Iterator[Services]:
    with capture_logs():  # failures are logged with their stack: kept as records, not rendered (slow)
        yield fake_services(FakeClock())


async def _submitted(services: Services, customer_id: str = "C1") -> str:
    await services.customers.create(NewCustomer(customer_id, "张三", AccountType.RESIDENTIAL), Actor(CLERK))
    application = await services.name_changes.submit(customer_id, "李四", "marriage", Actor(CLERK))
    return application.application_id


def _events(services: Services) -> list[str]:
    return [stored.entry.event_type for stored in services.adapters.database.tables.audit]


async def test_approving_updates_the_profile_writes_the_history_completes_the_application_and_one_event(
    services: Services,
) -> None:
    application_id = await _submitted(services)

    result = await services.name_changes.decide(application_id, Decision.APPROVED, AUDITOR, "ok", Actor(AUDITOR))

    assert isinstance(result, UpdateResult)
    assert (result.old_name, result.new_name, result.profile_version) == ("张三", "李四", 2)
    tables = services.adapters.database.tables
    customer = tables.customers["C1"]
    assert (customer.customer_name, customer.version) == ("李四", 2)
    assert [(h.old_name, h.new_name, h.profile_version) for h in tables.history] == [("张三", "李四", 2)]
    assert tables.applications[application_id].status is ApplicationStatus.COMPLETED
    assert tables.results[application_id]["profileVersion"] == 2
    assert [(m.aggregate_id, m.payload["newName"]) for m in tables.outbox] == [("C1", "李四")]
    assert _events(services)[-2:] == [AuditEvent.APPLICATION_APPROVED, AuditEvent.PROFILE_UPDATED]


async def test_repeating_the_update_of_a_completed_application_returns_its_first_result(
    services: Services,
) -> None:
    application_id = await _submitted(services)
    first = await services.name_changes.decide(application_id, Decision.APPROVED, AUDITOR, None, Actor(AUDITOR))

    again = await services.name_changes.update(application_id, Actor(AUDITOR))

    assert again == first
    assert len(services.adapters.database.tables.outbox) == 1


async def test_updating_a_pending_application_is_invalid_status_and_changes_nothing_but_the_log(
    services: Services,
) -> None:
    application_id = await _submitted(services)
    before = services.adapters.database.tables.copy()

    with pytest.raises(InvalidStatus):
        await services.name_changes.update(application_id, Actor(AUDITOR))

    tables = services.adapters.database.tables
    assert tables.customers == before.customers
    assert tables.applications[application_id].status is ApplicationStatus.PENDING
    assert (tables.history, tables.outbox) == ([], [])
    assert _events(services)[-1] == AuditEvent.UPDATE_REFUSED


async def test_a_profile_changed_since_the_application_is_a_concurrency_conflict_and_the_application_fails(
    services: Services,
) -> None:
    application_id = await _submitted(services)
    await services.customers.update("C1", ProfileChanges(remark="moved"), 1, Actor(CLERK))  # version 2

    with pytest.raises(ConcurrencyConflict):
        await services.name_changes.decide(application_id, Decision.APPROVED, AUDITOR, None, Actor(AUDITOR))

    tables = services.adapters.database.tables
    assert (tables.customers["C1"].customer_name, tables.customers["C1"].version) == ("张三", 2)
    failed = tables.applications[application_id]
    assert (failed.status, failed.failure_code) == (ApplicationStatus.UPDATE_FAILED, "CONCURRENCY_CONFLICT")
    assert tables.outbox == []
    assert _events(services)[-1] == AuditEvent.UPDATE_FAILED


async def test_rejecting_leaves_the_profile_as_it_was(services: Services) -> None:
    application_id = await _submitted(services)

    rejected = await services.name_changes.decide(application_id, Decision.REJECTED, AUDITOR, "no", Actor(AUDITOR))

    tables = services.adapters.database.tables
    assert isinstance(rejected, NameChangeApplication)
    assert rejected.status is ApplicationStatus.REJECTED
    assert (tables.customers["C1"].customer_name, tables.customers["C1"].version) == ("张三", 1)
    assert (tables.history, tables.outbox) == ([], [])
    assert _events(services)[-1] == AuditEvent.APPLICATION_REJECTED

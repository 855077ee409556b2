"""The customer use cases (create, edit, recycle bin, versions) on the in-memory adapters: milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from services.profile.bootstrap import ProfileServices
from services.profile.customers.service import NewCustomer
from services.profile.domain.errors import CustomerCodeExists, PreconditionFailed, ProfileNotFound
from services.profile.domain.ledger import ProfileChanges
from services.profile.domain.model import AccountType, ApplicationOrigin, CustomerStatus
from services.profile.shared.audit import AuditEvent
from services.profile.shared.results import Actor
from tests.fakes.profile_adapters import FakeAdapters, FakeClock, fake_services

Services = ProfileServices[FakeAdapters]
CLERK = Actor("clerk-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(clock: FakeClock) -> Iterator[Services]:
    with capture_logs():
        yield fake_services(clock)


def _new(customer_id: str = "C1", code: str | None = None) -> NewCustomer:
    return NewCustomer(customer_id, "张三", AccountType.RESIDENTIAL, customer_code=code, contact_phone="13800138000")


def _events(services: Services) -> list[str]:
    return [stored.entry.event_type for stored in services.adapters.database.tables.audit]


async def test_a_created_customer_is_version_1_by_its_creator_and_logged(services: Services) -> None:
    created = await services.customers.create(_new(), CLERK)

    assert (created.version, created.status, created.created_by, created.customer_code) == (
        1,
        CustomerStatus.ACTIVE,
        "clerk-1",
        "C1",
    )
    assert await services.customers.get("C1") == created
    assert _events(services) == [AuditEvent.CUSTOMER_CREATED]


async def test_a_customer_code_is_unique(services: Services) -> None:
    await services.customers.create(_new("C1", code="CODE-1"), CLERK)

    with pytest.raises(CustomerCodeExists):
        await services.customers.create(_new("C2", code="CODE-1"), CLERK)

    assert list(services.adapters.database.tables.customers) == ["C1"]


async def test_an_edit_needs_the_current_version_and_makes_the_next(services: Services, clock: FakeClock) -> None:
    await services.customers.create(_new(), CLERK)
    clock.advance()

    edited = await services.customers.update("C1", ProfileChanges(remark="VIP"), 1, CLERK)
    with pytest.raises(PreconditionFailed):
        await services.customers.update("C1", ProfileChanges(remark="stale"), 1, CLERK)

    assert (edited.version, edited.remark, edited.updated_at) == (2, "VIP", clock.now)
    assert (await services.customers.get("C1")).remark == "VIP"
    assert services.adapters.database.tables.outbox == []  # no rename, no event


async def test_an_edit_that_renames_takes_the_name_change_path(services: Services) -> None:
    await services.customers.create(_new(), CLERK)

    await services.customers.update("C1", ProfileChanges(customer_name="李四"), 1, CLERK, "typo")

    tables = services.adapters.database.tables
    [application] = tables.applications.values()
    assert (application.origin, application.new_name, application.reason) == (
        ApplicationOrigin.PROFILE_EDIT,
        "李四",
        "typo",
    )
    assert [(h.new_name, h.profile_version) for h in tables.history] == [("李四", 2)]
    assert [m.payload["newName"] for m in tables.outbox] == ["李四"]


async def test_a_deleted_customer_goes_to_the_recycle_bin_and_comes_back_as_it_was(services: Services) -> None:
    created = await services.customers.create(_new(), CLERK)

    deleted = await services.customers.delete("C1", 1, CLERK)
    with pytest.raises(ProfileNotFound):
        await services.customers.get("C1")
    binned = await services.customers.recycle_bin(None, None)
    restored = await services.customers.restore("C1", CLERK)

    assert (deleted.version, deleted.is_deleted) == (2, True)
    assert [c.customer_id for c in binned.items] == ["C1"]
    assert (restored.version, restored.is_deleted, restored.customer_name) == (3, False, created.customer_name)
    assert await services.customers.get("C1") == restored
    assert _events(services)[-2:] == [AuditEvent.CUSTOMER_DELETED, AuditEvent.CUSTOMER_RESTORED]


async def test_a_rollback_makes_a_new_version_with_the_old_content(services: Services) -> None:
    await services.customers.create(_new(), CLERK)
    await services.customers.update("C1", ProfileChanges(remark="v2"), 1, CLERK)
    await services.customers.update("C1", ProfileChanges(customer_name="李四", remark="v3"), 2, CLERK)

    result = await services.versions.rollback("C1", 1, 3, CLERK)

    assert (result.from_version, result.to_version, result.customer.version) == (3, 1, 4)
    current = await services.customers.get("C1")
    assert (current.customer_name, current.remark, current.version) == ("张三", None, 4)
    tables = services.adapters.database.tables
    assert [m.payload["newName"] for m in tables.outbox] == ["李四", "张三"]  # each rename is an event
    assert _events(services)[-1] == AuditEvent.CUSTOMER_ROLLED_BACK


async def test_a_rollback_against_a_stale_version_changes_nothing(services: Services) -> None:
    await services.customers.create(_new(), CLERK)
    await services.customers.update("C1", ProfileChanges(remark="v2"), 1, CLERK)

    with pytest.raises(PreconditionFailed):
        await services.versions.rollback("C1", 1, 1, CLERK)

    assert (await services.customers.get("C1")).version == 2

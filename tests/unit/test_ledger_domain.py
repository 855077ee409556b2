"""Pure ledger rules: edits under optimistic locking, the recycle bin, restore planning, the log's redaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.profile.domain.errors import (
    InvalidInput,
    InvalidStatus,
    NotInRecycleBin,
    PreconditionFailed,
    ProfileNotFound,
)
from services.profile.domain.ledger import ProfileChanges, audit_values, plan_edit, plan_soft_delete, plan_undelete
from services.profile.domain.model import (
    ApplicationOrigin,
    ApplicationStatus,
    CustomerStatus,
    Decision,
    direct_name_change,
    new_application,
)
from services.profile.domain.restore import RestoreAction, plan_customer_restore, plan_removal
from services.profile.shared.pagination import encode_cursor, fingerprint, time_key
from services.profile.shared.web.conditional import optional_version, required_version
from tests.domain_support import NOW, customer

CUSTOMER = customer(
    contact_phone="13800138000",
    contact_email="zhang@example.com",
    created_at=NOW - timedelta(days=10),
    updated_at=NOW - timedelta(days=1),
)


def test_an_edit_bumps_the_version_and_names_what_changed() -> None:
    edit = plan_edit(CUSTOMER, "C1", ProfileChanges(customer_name="李四", contact_email=None), 3, NOW, by="op")
    assert edit.changed == ("customerName", "contactEmail")
    assert (edit.after.version, edit.after.updated_at, edit.after.contact_email) == (4, NOW, None)
    assert edit.name_changed


def test_an_edit_that_changes_nothing_keeps_the_version() -> None:
    edit = plan_edit(CUSTOMER, "C1", ProfileChanges(customer_name="张三"), 3, NOW, by="op")
    assert edit.is_noop
    assert edit.after is CUSTOMER


def test_an_edit_against_an_old_version_is_refused() -> None:
    with pytest.raises(PreconditionFailed) as raised:
        plan_edit(CUSTOMER, "C1", ProfileChanges(status=CustomerStatus.SUSPENDED), 2, NOW, by="op")
    assert raised.value.extensions["current_version"] == 3


def test_deleted_customers_cannot_be_edited_and_only_they_can_be_restored() -> None:
    deleted = plan_soft_delete(CUSTOMER, "C1", None, NOW, by="op").after
    assert (deleted.deleted_at, deleted.version) == (NOW, 4)
    with pytest.raises(ProfileNotFound):
        plan_edit(deleted, "C1", ProfileChanges(status=CustomerStatus.ACTIVE), 4, NOW, by="op")
    with pytest.raises(PreconditionFailed):
        plan_soft_delete(CUSTOMER, "C1", 1, NOW, by="op")
    with pytest.raises(NotInRecycleBin):
        plan_undelete(CUSTOMER, "C1", NOW, by="op")
    back = plan_undelete(deleted, "C1", NOW, by="op").after
    assert (back.deleted_at, back.version) == (None, 5)


def test_the_log_names_changed_contact_fields_without_values() -> None:
    edit = plan_edit(
        CUSTOMER, "C1", ProfileChanges(contact_phone="13900139000", status=CustomerStatus.INACTIVE), 3, NOW, by="op"
    )
    old, new = audit_values(edit.before, edit.after, edit.changed)
    assert old == {"version": 3, "status": "active"}
    assert new == {"version": 4, "status": "inactive", "changedFields": ["contactPhone", "status"]}
    assert "13900139000" not in repr((old, new))


def test_restore_moves_forward_to_the_snapshot() -> None:
    current = replace(CUSTOMER, customer_name="王五", version=6, deleted_at=NOW - timedelta(hours=1))
    step = plan_customer_restore(current, CUSTOMER, None, NOW, by="op")
    assert step is not None
    assert step.action is RestoreAction.UNDELETE
    assert (step.after.customer_name, step.after.version, step.after.deleted_at) == ("张三", 7, None)
    assert step.changed == ("customerName", "deleted")
    assert (step.name_changed, step.old_name) == (True, "王五")
    assert plan_customer_restore(replace(CUSTOMER, version=9), CUSTOMER, None, NOW, by="op") is None


def test_restore_of_a_purged_customer_continues_above_every_known_version() -> None:
    step = plan_customer_restore(None, CUSTOMER, 11, NOW, by="op")
    assert step is not None
    assert (step.action, step.after.version, step.name_changed) == (RestoreAction.RECREATE, 12, True)
    assert plan_customer_restore(None, CUSTOMER, None, NOW, by="op").after.version == 4  # type: ignore[union-attr]


def test_restore_to_a_point_where_the_customer_was_in_the_recycle_bin() -> None:
    snapshot = replace(CUSTOMER, deleted_at=NOW - timedelta(days=3))
    step = plan_customer_restore(CUSTOMER, snapshot, None, NOW, by="op")
    assert step is not None
    assert (step.action, step.after.deleted_at, step.name_changed) == (RestoreAction.MOVE_TO_RECYCLE_BIN, NOW, False)
    created_later = plan_removal(CUSTOMER, NOW, by="op")
    assert created_later is not None
    assert (created_later.action, created_later.after.deleted_at) == (RestoreAction.MOVE_TO_RECYCLE_BIN, NOW)
    assert plan_removal(snapshot, NOW, by="op") is None


def test_a_direct_name_change_is_approved_by_its_operator() -> None:
    after = replace(CUSTOMER, customer_name="李四", version=4)
    change = direct_name_change(
        "APP-1", ApplicationOrigin.PROFILE_EDIT, before=CUSTOMER, after=after, reason="r", operator_id="op", now=NOW
    )
    application = change.application
    assert (application.status, application.origin, application.auditor_id) == (
        ApplicationStatus.APPROVED,
        ApplicationOrigin.PROFILE_EDIT,
        "op",
    )
    assert (application.old_name, application.new_name, application.profile_version, change.new_version) == (
        "张三",
        "李四",
        3,
        4,
    )


def test_only_a_failed_application_is_reapplied() -> None:
    submitted = new_application("APP-1", replace(CUSTOMER, customer_name="旧名", version=1), "李四", "r", NOW)
    approved = submitted.decide(Decision.APPROVED, "auditor", None, NOW)
    failed = approved.update_failed("CONCURRENCY_CONFLICT", "the profile moved on", NOW)
    rebased = failed.reapply(CUSTOMER, NOW)
    assert (rebased.status, rebased.old_name, rebased.profile_version, rebased.auditor_id) == (
        ApplicationStatus.PENDING,
        "张三",
        3,
        None,
    )
    with pytest.raises(InvalidStatus):
        rebased.reapply(CUSTOMER, NOW)


def test_cursors_are_bound_to_their_filters() -> None:
    mine = fingerprint("customers", "active")
    cursor = encode_cursor([NOW.isoformat(), "C1"], mine)
    assert time_key(cursor, mine) == (NOW, "C1")
    with pytest.raises(InvalidInput):
        time_key(cursor, fingerprint("customers", "suspended"))
    with pytest.raises(InvalidInput):
        time_key("%%%", mine)


@pytest.mark.parametrize(("header", "version"), [('"3"', 3), ('W/"3"', 3), ("3", 3)])
def test_if_match_names_a_version(header: str, version: int) -> None:
    assert required_version(header) == version
    assert optional_version(header) == version


def test_if_match_star_and_absence() -> None:
    assert optional_version(None) is None
    assert optional_version("*") is None
    with pytest.raises(InvalidInput):
        required_version("*")
    with pytest.raises(InvalidInput):
        required_version('"abc"')

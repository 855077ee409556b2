"""Seed 004's record (its field rules, personal data kept out of the log) and its versions (difference, rollback)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.profile.domain.errors import InvalidInput, PreconditionFailed, ProfileNotFound
from services.profile.domain.ledger import ProfileChanges, audit_values, plan_edit, validate_profile
from services.profile.domain.model import AccountType, ChangeKind, Customer, CustomerStatus
from services.profile.domain.versions import FieldDifference, differences, plan_rollback

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
V2 = Customer(
    customer_id="C1",
    customer_name="张三",
    contact_phone="13800138000",
    contact_email=None,
    contact_address=None,
    account_type=AccountType.COMMERCIAL,
    status=CustomerStatus.ACTIVE,
    version=2,
    created_at=NOW - timedelta(days=10),
    updated_at=NOW - timedelta(days=5),
    customer_code="CUST-001",
    company="北京电力设备有限公司",
    credit_limit=Decimal("50000.00"),
    tax_number="91110108MA01ABCDE1",
    created_by="alice",
    updated_by="alice",
    change_kind=ChangeKind.EDIT,
)
CURRENT = replace(
    V2,
    customer_name="李四",
    tax_number="91110108MA01ZZZZZ9",
    credit_limit=Decimal("0.00"),
    region="华北",
    version=5,
    updated_by="bob",
    updated_at=NOW - timedelta(hours=1),
)


def test_a_customer_without_a_code_has_its_id_as_code() -> None:
    assert replace(V2, customer_code="").customer_code == "C1"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        (ProfileChanges(customer_name="   "), "customerName"),
        (ProfileChanges(contact_phone="12"), "contactPhone"),
        (ProfileChanges(contact_email="a@b"), "contactEmail"),
        (ProfileChanges(contact_address="x" * 501), "contactAddress"),
        (ProfileChanges(customer_code="has space"), "customerCode"),
        (ProfileChanges(customer_code="x" * 101), "customerCode"),
        (ProfileChanges(customer_type="VIP!"), "customerType"),
        (ProfileChanges(credit_limit=Decimal("-0.01")), "creditLimit"),
        (ProfileChanges(credit_limit=Decimal("1.005")), "creditLimit"),
        (ProfileChanges(credit_limit=Decimal("10000000000000.00")), "creditLimit"),
        (ProfileChanges(credit_limit=Decimal("NaN")), "creditLimit"),
        (ProfileChanges(tax_number="91110108-MA01 ABC!"), "taxNumber"),
        (ProfileChanges(company="  "), "company"),
        (ProfileChanges(remark="r" * 2001), "remark"),
    ],
)
def test_record_rules(changes: ProfileChanges, key: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        plan_edit(CURRENT, "C1", changes, 5, NOW, by="op")
    errors = raised.value.extensions["errors"]
    assert [e["key"] for e in errors] == [key]
    assert "91110108" not in repr(errors)  # a refused tax number is never echoed


def test_the_largest_credit_limit_and_two_places_are_valid() -> None:
    validate_profile(replace(V2, credit_limit=Decimal("9999999999999.99")))
    validate_profile(replace(V2, credit_limit=Decimal("12.5")))


def test_an_edit_is_made_by_its_caller_and_the_log_keeps_the_tax_number_out() -> None:
    edit = plan_edit(CURRENT, "C1", ProfileChanges(tax_number=None, credit_limit=Decimal(100)), 5, NOW, by="carol")
    assert (edit.after.updated_by, edit.after.change_kind, edit.after.created_by) == ("carol", ChangeKind.EDIT, "alice")
    old, new = audit_values(edit.before, edit.after, edit.changed)
    assert new == {"version": 6, "changedFields": ["creditLimit", "taxNumber"], "creditLimit": "100.00"}
    assert old == {"version": 5, "creditLimit": "0.00"}
    assert "91110108" not in repr((old, new))


def test_differences_field_by_field_mark_personal_data() -> None:
    found = differences(V2, CURRENT)
    assert [d.field for d in found] == ["customerName", "region", "creditLimit", "taxNumber"]
    assert found[0] == FieldDifference("customerName", personal=False, old="张三", new="李四")
    assert found[2] == FieldDifference("creditLimit", personal=False, old="50000.00", new="0.00")
    assert found[3].personal
    assert differences(V2, replace(V2, deleted_at=NOW)) == [
        FieldDifference("deleted", personal=False, old=False, new=True)
    ]


def test_a_rollback_moves_forward_to_the_content_of_the_version() -> None:
    edit = plan_rollback(CURRENT, "C1", V2, 5, NOW, by="dave")
    after = edit.after
    assert (after.version, after.updated_at, after.updated_by, after.change_kind) == (
        6,
        NOW,
        "dave",
        ChangeKind.ROLLBACK,
    )
    assert (after.customer_name, after.tax_number, after.credit_limit, after.region) == (
        "张三",
        "91110108MA01ABCDE1",
        Decimal("50000.00"),
        None,
    )
    assert (after.created_by, after.created_at) == ("alice", V2.created_at)
    assert edit.changed == ("customerName", "region", "creditLimit", "taxNumber")
    assert edit.name_changed


def test_a_rollback_takes_the_recycle_bin_state_too() -> None:
    deleted = replace(CURRENT, deleted_at=NOW - timedelta(days=2))
    back = plan_rollback(deleted, "C1", V2, 5, NOW, by="op").after
    assert back.deleted_at is None
    into_bin = plan_rollback(CURRENT, "C1", replace(V2, deleted_at=NOW - timedelta(days=9)), 5, NOW, by="op").after
    assert into_bin.deleted_at == NOW  # its retention starts now


def test_a_rollback_needs_the_current_version_and_may_change_nothing() -> None:
    with pytest.raises(PreconditionFailed):
        plan_rollback(CURRENT, "C1", V2, 4, NOW, by="op")
    with pytest.raises(ProfileNotFound):
        plan_rollback(None, "C1", V2, 5, NOW, by="op")
    same = plan_rollback(CURRENT, "C1", replace(CURRENT, version=3), 5, NOW, by="op")
    assert same.is_noop
    assert same.after is CURRENT


def test_a_version_no_longer_valid_is_not_rolled_back_to() -> None:
    with pytest.raises(InvalidInput):
        plan_rollback(CURRENT, "C1", replace(V2, customer_type="Legacy Type"), 5, NOW, by="op")

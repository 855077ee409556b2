"""Pure domain rules of a name change (seed 000 5.2.1 steps 2-4)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.profile.domain.errors import ConcurrencyConflict, InvalidStatus, ProfileNotFound
from services.profile.domain.model import ApplicationStatus, Decision, new_application, plan_name_change
from tests.domain_support import NOW, customer

CUSTOMER = customer()


def test_submission_captures_old_name_and_version() -> None:
    application = new_application("APP-1", CUSTOMER, "李四", "过户", NOW)
    assert (application.old_name, application.profile_version, application.status) == (
        "张三",
        3,
        ApplicationStatus.PENDING,
    )


def test_submission_for_deleted_customer_is_refused() -> None:
    with pytest.raises(ProfileNotFound):
        new_application("APP-1", replace(CUSTOMER, deleted_at=NOW), "李四", "过户", NOW)


def test_only_pending_can_be_decided() -> None:
    approved = new_application("APP-1", CUSTOMER, "李四", "过户", NOW).decide(Decision.APPROVED, "a1", None, NOW)
    assert approved.status is ApplicationStatus.APPROVED
    with pytest.raises(InvalidStatus):
        approved.decide(Decision.REJECTED, "a1", None, NOW)


def test_plan_bumps_version_of_an_approved_application() -> None:
    approved = new_application("APP-1", CUSTOMER, "李四", "过户", NOW).decide(Decision.APPROVED, "a1", None, NOW)
    change = plan_name_change(approved, CUSTOMER, NOW)
    assert change.new_version == 4
    assert change.customer_type == "residential"


@pytest.mark.parametrize("status", [ApplicationStatus.PENDING, ApplicationStatus.REJECTED, ApplicationStatus.COMPLETED])
def test_plan_requires_approval(status: ApplicationStatus) -> None:
    application = replace(new_application("APP-1", CUSTOMER, "李四", "过户", NOW), status=status)
    with pytest.raises(InvalidStatus):
        plan_name_change(application, CUSTOMER, NOW)


def test_plan_refuses_missing_or_deleted_profile() -> None:
    approved = new_application("APP-1", CUSTOMER, "李四", "过户", NOW).decide(Decision.APPROVED, "a1", None, NOW)
    with pytest.raises(ProfileNotFound):
        plan_name_change(approved, None, NOW)
    with pytest.raises(ProfileNotFound):
        plan_name_change(approved, replace(CUSTOMER, deleted_at=NOW), NOW)


def test_plan_detects_a_concurrent_modification() -> None:
    approved = new_application("APP-1", CUSTOMER, "李四", "过户", NOW).decide(Decision.APPROVED, "a1", None, NOW)
    with pytest.raises(ConcurrencyConflict) as caught:
        plan_name_change(approved, replace(CUSTOMER, version=4), NOW)
    assert not caught.value.retryable, "the application's profileVersion is fixed: a repeat fails the same way"
    assert caught.value.action == "REAPPLY"
    assert "re-apply" in caught.value.detail
    assert caught.value.status == 409

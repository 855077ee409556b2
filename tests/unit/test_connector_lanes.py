"""The per-customer lane rule: which record may be sent now, which waits, which is superseded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.sync_connector.lanes import Blocker, LaneState, RecordState, Verdict, judge
from services.sync_connector.outcome import SyncStatus

LATER = datetime(2030, 1, 1, tzinfo=UTC)
FREE = LaneState(applied_version=None, inflight_record_id=None, inflight_until=None, inflight_live=False)


def record(
    status: SyncStatus = SyncStatus.PENDING, version: int = 2, *, due: bool = True, record_id: int = 7
) -> RecordState:
    return RecordState(id=record_id, status=status, profile_version=version, due=due)


def lane(applied: int | None = None, inflight: int | None = None, *, live: bool = True) -> LaneState:
    return LaneState(applied, inflight, LATER if inflight else None, inflight_live=live and inflight is not None)


@pytest.mark.parametrize("status", [SyncStatus.SUCCESS, SyncStatus.FAILED, SyncStatus.SUPERSEDED])
def test_a_terminal_record_is_left_alone(status: SyncStatus) -> None:
    assert judge(record(status), lane(applied=1, inflight=9), None) is Verdict.FINISHED


def test_a_free_lane_sends() -> None:
    assert judge(record(), FREE, None) is Verdict.SEND
    assert judge(record(SyncStatus.RETRYING), lane(applied=1), None) is Verdict.SEND


def test_the_holder_of_the_lane_is_not_sent_twice() -> None:
    assert judge(record(), lane(inflight=7), None) is Verdict.IN_FLIGHT


def test_an_expired_claim_is_taken_over() -> None:
    assert judge(record(), lane(inflight=7, live=False), None) is Verdict.SEND


@pytest.mark.parametrize("applied", [2, 3])
def test_a_version_the_system_already_holds_is_superseded(applied: int) -> None:
    assert judge(record(version=2), lane(applied=applied), None) is Verdict.SUPERSEDED
    assert judge(record(version=2, due=False), lane(applied=applied, inflight=9), None) is Verdict.SUPERSEDED


def test_a_record_not_yet_due_stays_with_the_scheduler() -> None:
    assert judge(record(due=False), FREE, None) is Verdict.SCHEDULED


def test_another_delivery_in_flight_makes_it_wait() -> None:
    assert judge(record(), lane(inflight=9), None) is Verdict.LANE_BUSY


def test_an_older_open_record_parks_it() -> None:
    blocker = Blocker(id=5, profile_version=1, next_attempt_at=LATER)
    assert judge(record(), FREE, blocker) is Verdict.PARKED

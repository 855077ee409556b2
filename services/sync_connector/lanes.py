"""What to do with one (event, system) record now: the per-customer lane rule (pure, unit tested).

A *lane* is one customer at one external system. Its row in
``sync.customer_sync_state`` is locked by every transaction that decides about
a record of the lane, so decisions about one lane never race. The rule keeps
invariant 4 without blocking a Kafka partition behind a retry:

* at most one delivery of a lane is in flight (the lane names the record and a
  lease end; a holder that crashed loses the lane when the lease ends);
* deliveries of a lane go out in profile-version order: a record waits
  ("parked") while an older record of the lane is still open (pending or
  retrying); a ``failed`` record does not hold the lane, so one poison event
  blocks only itself and the newer state still reaches the system;
* a record whose version the system already holds (or a newer one) is
  ``superseded`` and never sent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from services.sync_connector.outcome import TERMINAL_STATUSES, SyncStatus


class RecordState(msgspec.Struct, frozen=True):
    """What a decision needs to know about the record (as locked in the deciding transaction)."""

    id: int
    status: SyncStatus
    profile_version: int
    due: bool  # next_attempt_at is unset or has passed (database clock)


class LaneState(msgspec.Struct, frozen=True):
    applied_version: int | None
    inflight_record_id: int | None
    inflight_until: datetime | None
    inflight_live: bool  # the in-flight lease has not ended (database clock)


class Blocker(msgspec.Struct, frozen=True):
    """The oldest other open record of the lane, ahead of this one."""

    id: int
    profile_version: int
    next_attempt_at: datetime | None


class Verdict(StrEnum):
    FINISHED = "finished"  # terminal already (a redelivery): nothing to do
    IN_FLIGHT = "in_flight"  # someone holds this very record; they finish it, or their lease ends
    SCHEDULED = "scheduled"  # waiting for its next attempt time; the retry scheduler will take it
    SUPERSEDED = "superseded"  # the system already holds this version or a newer one
    LANE_BUSY = "lane_busy"  # another delivery of this customer to this system is in flight
    PARKED = "parked"  # an older delivery of this customer to this system is still open
    SEND = "send"


def judge(record: RecordState, lane: LaneState, blocker: Blocker | None) -> Verdict:  # noqa: PLR0911 - rules in order
    if record.status in TERMINAL_STATUSES:
        return Verdict.FINISHED
    if lane.inflight_live and lane.inflight_record_id == record.id:
        return Verdict.IN_FLIGHT
    if lane.applied_version is not None and lane.applied_version >= record.profile_version:
        return Verdict.SUPERSEDED
    if not record.due:
        return Verdict.SCHEDULED
    if lane.inflight_live:
        return Verdict.LANE_BUSY
    if blocker is not None:
        return Verdict.PARKED
    return Verdict.SEND

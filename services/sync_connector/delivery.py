"""Deliver (event, system) records: decide under the lane lock, claim, call, settle.

Two callers share this: the partition worker (the fast path, a message just
read from Kafka) and the retry scheduler (records whose next attempt is due).
Neither ever waits for a retry: a transient failure persists the record as
``retrying`` with ``next_attempt_at`` and the partition moves on; the scheduler
picks it up when due, in this or any other connector instance (see README,
"Sync-connector"). Every database write commits before the next network call
(invariant 6); a call happens only under a claim (a fencing token on the record
plus the lane's in-flight lease), so a rebalance or a second instance never
makes two calls in flight for one (event, system), and a late result of a lost
claim is discarded instead of recorded twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import CustomerNameChanged
from libs.kit.logging import get_logger
from services.sync_connector.attempts import CallResult, log_attempt
from services.sync_connector.breaker import CircuitBreaker, Permit
from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.lanes import LaneState, Verdict, judge
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import (
    TERMINAL_STATUSES,
    Classification,
    Outcome,
    RetryPolicy,
    SyncStatus,
    classify_response,
    classify_transport_error,
    status_after,
)
from services.sync_connector.records import SyncRecord, SyncUnitOfWork
from services.sync_connector.sinks import Sink, SinkUnavailableError, encode_payload
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

# Waits between attempts to write a call's result while the database is unavailable.
SETTLE_RETRY_BACKOFF = RetryPolicy(max_retries=0, base_s=0.2, max_s=5.0)


class SettleInterruptedError(Exception):
    """Stopping while the database refused a call's result; the claim's lease ends and the call is repeated."""


async def settle_until_recorded(
    write: Callable[[], Awaitable[bool]], stop: asyncio.Event, on_error: Callable[[Exception, float], None]
) -> bool:
    """Write a call's result, retrying through a database outage (the call is not repeated for it).

    Returns what ``write`` returns (False: the claim was lost); raises SettleInterruptedError when
    stopping first, so the claim's lease ends and the call is made again under a new claim.
    """
    failures = 0
    while True:
        try:
            return await write()
        except DATABASE_FAULTS as exc:
            failures += 1
            wait_s = SETTLE_RETRY_BACKOFF.delay_before_retry(failures)
            on_error(exc, wait_s)
            if await wait_until_set(stop, wait_s):
                raise SettleInterruptedError(str(exc)) from exc


class Claim(msgspec.Struct, frozen=True):
    """The right to make one call for a record: shown back (token) when recording the result."""

    record: SyncRecord
    token: str
    permit: Permit

    # What the retry scheduler needs of any claim (``scheduler.ScheduledClaim``).
    @property
    def record_id(self) -> int:
        return self.record.id

    @property
    def event_id(self) -> str:
        return self.record.event_id

    @property
    def trace_headers(self) -> dict[str, str]:
        return self.record.event_headers


ClaimT = TypeVar("ClaimT")


class DueBatch(msgspec.Struct, Generic[ClaimT], frozen=True):
    """One round of the retry scheduler: the claims to call now, out of the due records seen."""

    claims: list[ClaimT]
    examined: int  # due records seen (claimed, superseded, deferred or skipped)
    skipped: int  # seen but left untouched because their lane was busy in another transaction


class SyncDelivery:
    def __init__(
        self,
        engine: AsyncEngine,
        sink: Sink,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        metrics: ConnectorMetrics,
        *,
        lease_s: float,
        recheck_s: float,
        on_dead_letter: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._sink = sink
        self._breaker = breaker
        self._policy = policy
        self._metrics = metrics
        self._lease_s = lease_s
        self._recheck_s = recheck_s  # the soonest a parked or deferred record is looked at again
        self._on_dead_letter = on_dead_letter
        self.system_code = sink.system.code

    async def accept(
        self, event_id: str, event: CustomerNameChanged, headers: dict[str, str], stop: asyncio.Event
    ) -> str:
        """The fast path for a message just read: record it and, if its lane allows, deliver it now.

        Returns what happened (a final status, or why it was left to the retry scheduler).
        """
        async with SyncUnitOfWork(self._engine) as uow:
            lane = await uow.records.lock_lane(self.system_code, event.customer_id)
            record = await uow.records.open(
                event_id=event_id,
                customer_id=event.customer_id,
                application_id=event.application_id,
                profile_version=event.profile_version,
                system=self._sink.system,
                sync_data=encode_payload(event_id, event),
                event_headers=headers,
                max_retry_count=self._policy.max_retries,
            )
            verdict, claim = await self._decide(uow, record, lane)
            await self._commit_or_release(uow, [claim] if claim else [])
        if claim is None:
            return verdict
        status = await self.attempt(claim, stop)
        return "claim_lost" if status is None else status.value

    async def claim_due(self, limit: int) -> DueBatch[Claim]:
        """For the retry scheduler: decide about up to ``limit`` due records, claiming those to call now."""
        claims: list[Claim] = []
        skipped = 0
        async with SyncUnitOfWork(self._engine) as uow:
            due = await uow.records.due(self.system_code, limit)
            # Lanes in one order, and never waited for: two schedulers cannot deadlock on them.
            for record in sorted(due, key=lambda r: (r.customer_id, r.profile_version, r.id)):
                lane = await uow.records.try_lock_lane(record.system_code, record.customer_id)
                if lane is None:
                    skipped += 1
                    continue
                _, claim = await self._decide(uow, record, lane)
                if claim is not None:
                    claims.append(claim)
            await self._commit_or_release(uow, claims)
        return DueBatch(claims, len(due), skipped)

    async def _commit_or_release(self, uow: SyncUnitOfWork, claims: list[Claim]) -> None:
        try:
            await uow.commit()
        except BaseException:
            for claim in claims:  # no call will be made: a half-open breaker must not wait for its trial forever
                self._breaker.release(claim.permit)
            raise

    async def _decide(self, uow: SyncUnitOfWork, record: SyncRecord, lane: LaneState) -> tuple[str, Claim | None]:
        logger = _bind(record)
        blocker = None if record.status in TERMINAL_STATUSES else await uow.records.blocker(record)
        verdict = judge(record.state, lane, blocker)
        if verdict is Verdict.FINISHED:
            self._metrics.skipped.labels(self.system_code).inc()
            logger.info("sync_redelivery_skipped", sync_status=record.status.value)
        elif verdict in (Verdict.IN_FLIGHT, Verdict.SCHEDULED):
            self._metrics.deferred.labels(self.system_code, verdict.value).inc()
            logger.info("sync_left_to_scheduler", reason=verdict.value, next_attempt_at=str(record.next_attempt_at))
        elif verdict is Verdict.SUPERSEDED:
            detail = f"{self.system_code} already applied version {lane.applied_version}"
            await uow.records.finish(record.id, SyncStatus.SUPERSEDED, None, detail)
            await uow.records.release_lane(record)
            self._metrics.status.labels(self.system_code, SyncStatus.SUPERSEDED.value).inc()
            logger.info("sync_superseded", applied_version=lane.applied_version)
        elif verdict in (Verdict.LANE_BUSY, Verdict.PARKED):
            # Wait for the record in flight (lane busy) or the older open one (parked); finishing it wakes us.
            waiting_for: int | None
            not_before: datetime | None
            if blocker is not None and verdict is Verdict.PARKED:
                waiting_for, not_before = blocker.id, blocker.next_attempt_at
            else:
                waiting_for, not_before = lane.inflight_record_id, lane.inflight_until
            await uow.records.defer(
                record.id, status=record.status, delay_s=self._recheck_s, not_before=not_before, blocked_by=waiting_for
            )
            self._metrics.deferred.labels(self.system_code, verdict.value).inc()
            logger.info("sync_waiting", reason=verdict.value, blocked_by_record_id=waiting_for)
        else:
            return await self._claim_or_defer(uow, record, logger)
        return verdict.value, None

    async def _claim_or_defer(
        self, uow: SyncUnitOfWork, record: SyncRecord, logger: structlog.stdlib.BoundLogger
    ) -> tuple[str, Claim | None]:
        permit = self._breaker.acquire()
        if permit is None:
            # Deferred, not failed: no attempt is spent while the system is known to be down.
            wait_s = max(self._breaker.seconds_until_probe(), self._recheck_s)
            await uow.records.defer(record.id, status=SyncStatus.RETRYING, delay_s=wait_s)
            self._metrics.deferred.labels(self.system_code, "circuit_open").inc()
            logger.info("sync_deferred_circuit_open", retry_in_s=round(wait_s, 3))
            return "circuit_open", None
        token = await uow.records.claim(record.id, self._lease_s)
        return Verdict.SEND.value, Claim(record, token, permit)

    async def attempt(self, claim: Claim, stop: asyncio.Event) -> SyncStatus | None:
        """Make the claimed call and record its result; None when the claim was lost meanwhile."""
        record = claim.record
        logger = _bind(record)
        started = time.monotonic()
        try:
            classification, http_status = await self._call(record)
        except BaseException:  # cancelled: no result, and a half-open breaker must not wait for it forever
            self._breaker.release(claim.permit)
            raise
        duration_s = time.monotonic() - started
        if classification.outcome is Outcome.RETRYABLE:
            self._breaker.record_failure(claim.permit)
        else:
            self._breaker.record_success(claim.permit)
        status = status_after(classification.outcome, record.retry_count, record.max_retry_count)
        delay_s = 0.0
        if status is SyncStatus.RETRYING:
            # While the breaker is not closed, no retry before its next probe: during a long outage the
            # waiting records take turns as the trial, instead of one record spending its whole budget.
            delay_s = max(self._policy.delay_before_retry(record.retry_count + 1), self._breaker.seconds_until_probe())
        result = CallResult(classification, http_status, status, delay_s, duration_s)
        self._metrics.attempts.labels(self.system_code, classification.outcome.value).inc()
        self._metrics.attempt_seconds.labels(self.system_code).observe(duration_s)
        if not await self._settle(claim, result, stop):
            self._metrics.claims_lost.labels(self.system_code).inc()
            logger.warning("sync_claim_lost", outcome=classification.outcome.value, http_status=http_status)
            return None
        self._metrics.status.labels(self.system_code, status.value).inc()
        retries = record.retry_count + (1 if status is SyncStatus.RETRYING else 0)
        log_attempt(logger, status, classification, http_status=http_status, retries=retries, delay_s=delay_s)
        if status is SyncStatus.FAILED:
            self._metrics.dead_letters.labels(self.system_code, result.dead_letter_reason).inc()
            self._on_dead_letter()
        return status

    async def _settle(self, claim: Claim, result: CallResult, stop: asyncio.Event) -> bool:
        """Record the result (retrying through a database outage); False when the claim was lost."""

        def not_recorded(exc: Exception, wait_s: float) -> None:
            self._metrics.processing_errors.labels(self.system_code, "database").inc()
            _bind(claim.record).warning("sync_result_not_recorded", error=repr(exc), retry_in_s=round(wait_s, 3))

        return await settle_until_recorded(lambda: self._settle_once(claim, result), stop, not_recorded)

    async def _settle_once(self, claim: Claim, result: CallResult) -> bool:
        record, status = claim.record, result.status
        async with SyncUnitOfWork(self._engine) as uow:
            await uow.records.lock_lane_of(record)
            if not await uow.records.release_claim(record.id, claim.token):
                return False
            await uow.records.add_attempt(
                record.id,
                outcome=result.classification.outcome.value,
                http_status=result.http_status,
                error=result.error,
                duration_ms=result.duration_s * 1000,
            )
            if status is SyncStatus.RETRYING:
                await uow.records.schedule_retry(
                    record.id,
                    retry_count=record.retry_count + 1,
                    delay_s=result.delay_s,
                    http_status=result.http_status,
                    error=result.classification.detail,
                )
            else:
                await uow.records.finish(record.id, status, result.http_status, result.error)
            if status is SyncStatus.SUCCESS:
                await uow.records.record_applied(record)
            elif status is SyncStatus.FAILED:
                await uow.records.add_dead_letter(
                    record.id, reason=result.dead_letter_reason, error=result.error, http_status=result.http_status
                )
            await uow.records.release_lane(record)
            await uow.commit()
        return True

    async def _call(self, record: SyncRecord) -> tuple[Classification, int | None]:
        try:
            response = await self._sink.send(record.event_id, record.sync_data.encode())
        except SinkUnavailableError as exc:
            return classify_transport_error(exc.kind, str(exc)), None
        return classify_response(response.status, response.body, record.profile_version), response.status


def _bind(record: SyncRecord) -> structlog.stdlib.BoundLogger:
    return log.bind(
        record_id=record.id,
        event_id=record.event_id,
        customer_id=record.customer_id,
        system_code=record.system_code,
        profile_version=record.profile_version,
    )

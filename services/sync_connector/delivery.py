"""Deliver (event, system) records: decide under the lane locks, claim, call, settle, a batch at a time.

Two callers share this: the partition worker (the fast path, the messages just read
from one partition) and the retry scheduler (records whose next attempt is due).
Neither ever waits for a retry: a transient failure persists the record as
``retrying`` with ``next_attempt_at`` and the partition moves on; the scheduler
picks it up when due, in this or any other connector instance (see README,
"Sync-connector"). Every database write commits before the next network call
(invariant 6); a call happens only under a claim (a fencing token on the record
plus the lane's in-flight lease), so a rebalance or a second instance never
makes two calls in flight for one (event, system), and a late result of a lost
claim is discarded instead of recorded twice.

A batch from the partition is handled in waves with at most one event per customer:
one transaction opens and claims the whole wave, the calls run concurrently, one
transaction records their results; the next wave (the customers' later events) follows.
That keeps each customer's order at the system and costs a handful of statements per
wave instead of a dozen per message.

Retries go by time (README, "Delivery guarantees"): a record is retried with capped exponential
backoff until its deadline (``deliver_by``, the system's delivery deadline after the event was first
seen); only a passed deadline or a permanent refusal fails it. While the system's breaker is open,
records wait without attempts: one trial call at a time probes the system and spends nothing of
the record it carries (no retry, no attempt row), and records whose deadline passes while they
wait are failed by ``expire_overdue``. Every breaker permit taken is released on every path
(exception, cancellation, a database error before the commit): a trial can never be left out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import structlog
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.logging import get_logger
from services.sync_connector.attempts import CallResult, log_attempt
from services.sync_connector.batches import AcceptedEvent, Claim, waves
from services.sync_connector.breaker import CircuitBreaker, Permit
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.lanes import Blocker, LaneState, Verdict, judge
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import (
    TERMINAL_STATUSES,
    Classification,
    DeadLetterReason,
    Outcome,
    RetryPolicy,
    SyncStatus,
    classify_response,
    classify_transport_error,
    next_step,
)
from services.sync_connector.records import NewRecord, Settlement, SyncRecord, SyncUnitOfWork
from services.sync_connector.settling import DueBatch, settle_until_recorded
from services.sync_connector.sinks import Sink, SinkUnavailableError, encode_payload

log = get_logger(__name__)


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
        deadline_s: float,
        on_dead_letter: Callable[[], None],
        max_wave: int = 64,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._engine = engine
        self._sink = sink
        self._breaker = breaker
        self._policy = policy
        self._deadline_s = deadline_s
        self._clock = clock
        self._metrics = metrics
        self._lease_s = lease_s
        self._recheck_s = recheck_s  # the soonest a parked or deferred record is looked at again
        self._on_dead_letter = on_dead_letter
        self._max_wave = max_wave
        self.system_code = sink.system.code

    async def accept_batch(self, events: Sequence[AcceptedEvent], stop: asyncio.Event) -> list[str]:
        """The fast path for messages just read (one partition, in offset order): record them and deliver
        what their lanes allow now. Returns per event what happened (a final status, or why it was left
        to the retry scheduler)."""
        outcomes = [""] * len(events)
        for wave in waves(events, self._max_wave):
            held: list[Permit] = []
            try:
                claims, verdicts = await self._open_and_claim([events[i] for i in wave], held)
                statuses = await self.attempt_many(list(claims.values()), stop)
            finally:  # a no-op for permits whose call reported; frees those of calls never made
                self._release(held)
            settled = dict(zip(claims, statuses, strict=True))
            for i in wave:
                event_id = events[i].event_id
                if event_id in settled:
                    status = settled[event_id]
                    outcomes[i] = "claim_lost" if status is None else status.value
                else:
                    outcomes[i] = verdicts[event_id]
        return outcomes

    def _uow(self) -> SyncUnitOfWork:
        return SyncUnitOfWork(self._engine, self.system_code, self._clock)

    def _release(self, permits: Iterable[Permit]) -> None:
        for permit in permits:
            self._breaker.release(permit)

    async def _open_and_claim(
        self, wave: Sequence[AcceptedEvent], held: list[Permit]
    ) -> tuple[dict[str, Claim], dict[str, str]]:
        """One transaction: open the wave's records, decide each under its lane's lock, claim those to send.

        Returns the claims and the verdicts of the others, by event id. Every permit taken is appended to
        ``held`` at once: the caller releases them whatever happens next.
        """
        new = [
            NewRecord(
                event_id=e.event_id,
                customer_id=e.event.customer_id,
                application_id=e.event.application_id,
                profile_version=e.event.profile_version,
                sync_data=encode_payload(e.event_id, e.event),
                event_headers=e.headers,
            )
            for e in wave
        ]
        spans = {e.event_id: e.span for e in wave}
        async with self._uow() as uow:
            lanes = await uow.records.lock_lanes([n.customer_id for n in new])
            opened = await uow.records.open(
                self._sink.system, new, max_retry_count=self._policy.max_retries, deadline_s=self._deadline_s
            )
            verdicts: dict[str, str] = {}
            to_claim: list[tuple[SyncRecord, Permit]] = []
            for record, blocker in opened:
                verdict = await self._decide(uow, record, lanes[record.customer_id], blocker)
                if verdict is Verdict.SEND and (permit := await self._permit_or_defer(uow, record, held)) is not None:
                    to_claim.append((record, permit))
                else:
                    verdicts[record.event_id] = "circuit_open" if verdict is Verdict.SEND else verdict.value
            tokens = await uow.records.claim([r.id for r, _ in to_claim], self._lease_s)
            claims = [
                Claim(r, token, permit, spans.get(r.event_id))
                for (r, permit), token in zip(to_claim, tokens, strict=True)
            ]
            await uow.commit()
        return {c.record.event_id: c for c in claims}, verdicts

    async def claim_due(self, limit: int) -> DueBatch[Claim]:
        """For the retry scheduler: decide about up to ``limit`` due records, claiming those to call now."""
        claims: list[Claim] = []
        skipped = 0
        held: list[Permit] = []
        try:
            async with self._uow() as uow:
                due = await uow.records.due(limit)
                # Lanes in one order, and never waited for: two schedulers cannot deadlock on them.
                for record in sorted(due, key=lambda r: (r.customer_id, r.profile_version, r.id)):
                    lane = await uow.records.try_lock_lane(record.customer_id)
                    if lane is None:
                        skipped += 1
                        continue
                    blocker = None if record.status in TERMINAL_STATUSES else await self._blocker(uow, record)
                    if await self._decide(uow, record, lane, blocker) is not Verdict.SEND:
                        continue
                    if (permit := await self._permit_or_defer(uow, record, held)) is not None:
                        (token,) = await uow.records.claim([record.id], self._lease_s)
                        claims.append(Claim(record, token, permit))
                await uow.commit()
        except BaseException:  # no call will be made: a half-open breaker must not wait for its trial
            self._release(held)
            raise
        return DueBatch(claims, len(due), skipped)

    async def expire_overdue(self, limit: int) -> int:
        """Fail (and dead-letter) up to ``limit`` waiting records whose deadline passed while the system was
        down; returns how many. The retry scheduler calls this while the breaker is not closed."""
        detail = f"delivery deadline passed while {self.system_code} was unavailable."
        async with self._uow() as uow:
            expired = await uow.records.expire(detail, limit)
            await uow.commit()
        for record in expired:
            self._metrics.status.labels(self.system_code, SyncStatus.FAILED.value).inc()
            self._metrics.dead_letters.labels(self.system_code, DeadLetterReason.DEADLINE.value).inc()
            log.error(
                "sync_failed_dead_lettered",
                reason=DeadLetterReason.DEADLINE.value,
                record_id=record.id,
                event_id=record.event_id,
                customer_id=record.customer_id,
                system_code=self.system_code,
                profile_version=record.profile_version,
                error=detail,
                permanent=False,
                breaker_state=self._breaker.state.name.lower(),
            )
        if expired:
            self._on_dead_letter()
        return len(expired)

    @staticmethod
    async def _blocker(uow: SyncUnitOfWork, record: SyncRecord) -> Blocker | None:
        return (await uow.records.blockers([record])).get(record.id)

    async def _decide(
        self, uow: SyncUnitOfWork, record: SyncRecord, lane: LaneState, blocker: Blocker | None
    ) -> Verdict:
        """The lane rule's verdict, with what it implies written (superseded, deferred)."""
        verdict = judge(record.state, lane, blocker)
        if verdict is Verdict.SEND:
            return verdict
        logger = _bind(record)
        if verdict is Verdict.FINISHED:
            self._metrics.skipped.labels(self.system_code).inc()
            logger.info("sync_redelivery_skipped", sync_status=record.status.value)
        elif verdict in (Verdict.IN_FLIGHT, Verdict.SCHEDULED):
            self._metrics.deferred.labels(self.system_code, verdict.value).inc()
            logger.info("sync_left_to_scheduler", reason=verdict.value, next_attempt_at=str(record.next_attempt_at))
        elif verdict is Verdict.SUPERSEDED:
            await uow.records.supersede(record, f"{self.system_code} already applied version {lane.applied_version}")
            self._metrics.status.labels(self.system_code, SyncStatus.SUPERSEDED.value).inc()
            logger.info("sync_superseded", applied_version=lane.applied_version)
        else:  # lane busy or parked: wait for the record in flight or the older open one; finishing it wakes us
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
        return verdict

    async def _permit_or_defer(self, uow: SyncUnitOfWork, record: SyncRecord, held: list[Permit]) -> Permit | None:
        permit = self._breaker.acquire()
        if permit is not None:
            held.append(permit)
        else:
            # Deferred, not failed: no attempt is spent while the system is known to be down.
            wait_s = max(self._breaker.seconds_until_probe(), self._recheck_s)
            await uow.records.defer(record.id, status=SyncStatus.RETRYING, delay_s=wait_s)
            self._metrics.deferred.labels(self.system_code, "circuit_open").inc()
            _bind(record).info("sync_deferred_circuit_open", retry_in_s=round(wait_s, 3))
        return permit

    async def attempt(self, claim: Claim, stop: asyncio.Event) -> SyncStatus | None:
        """Make the claimed call and record its result; None when the claim was lost meanwhile."""
        (status,) = await self.attempt_many([claim], stop)
        return status

    async def attempt_many(self, claims: Sequence[Claim], stop: asyncio.Event) -> list[SyncStatus | None]:
        """Make the claimed calls concurrently, then record their results in one transaction.

        Per claim: the record's new status, or None when the claim was lost meanwhile.
        """
        if not claims:
            return []
        try:
            results = await asyncio.gather(*(self._call(claim) for claim in claims))
        finally:  # cancelled before a call began (or its task never ran): its permit must not stay out
            self._release(claim.permit for claim in claims)
        settlements = [Settlement(c.record, c.token, r) for c, r in zip(claims, results, strict=True)]

        def not_recorded(exc: Exception, wait_s: float) -> None:
            self._metrics.processing_errors.labels(self.system_code, "database").inc()
            log.warning("sync_results_not_recorded", records=len(claims), error=repr(exc), retry_in_s=round(wait_s, 3))

        kept = await settle_until_recorded(lambda: self._settle_once(settlements), stop, not_recorded)
        recorded = {s.record.id for s in kept}
        statuses: list[SyncStatus | None] = []
        for claim, settlement in zip(claims, settlements, strict=True):
            # Logged in the call's span, so the lines carry its trace id.
            with trace.use_span(claim.span or trace.get_current_span(), end_on_exit=False):
                if settlement.record.id in recorded:
                    statuses.append(self._report(settlement))
                else:
                    self._lost(settlement)
                    statuses.append(None)
        return statuses

    def _lost(self, settlement: Settlement) -> None:
        self._metrics.claims_lost.labels(self.system_code).inc()
        _bind(settlement.record).warning(
            "sync_claim_lost",
            outcome=settlement.result.classification.outcome.value,
            http_status=settlement.result.http_status,
        )

    async def _settle_once(self, settlements: Sequence[Settlement]) -> list[Settlement]:
        async with self._uow() as uow:
            kept = await uow.records.settle(settlements)
            await uow.commit()
        return kept

    def _report(self, settlement: Settlement) -> SyncStatus:
        record, result = settlement.record, settlement.result
        status = result.status
        if result.counted or status is not record.status:  # a failed probe changes nothing of its record
            self._metrics.status.labels(self.system_code, status.value).inc()
        retries = record.retry_count + (1 if status is SyncStatus.RETRYING and result.counted else 0)
        log_attempt(_bind(record), result, retries=retries)
        if status is SyncStatus.FAILED:
            self._metrics.dead_letters.labels(self.system_code, result.dead_letter_reason).inc()
            self._on_dead_letter()
        return status

    async def _call(self, claim: Claim) -> CallResult:
        record = claim.record
        started = time.monotonic()
        try:
            if claim.span is None:
                classification, http_status = await self._send(record)
            else:
                with trace.use_span(claim.span, end_on_exit=False):
                    classification, http_status = await self._send(record)
        except BaseException:  # cancelled: no result, and a half-open breaker must not wait for it forever
            self._breaker.release(claim.permit)
            raise
        duration_s = time.monotonic() - started
        if classification.outcome is Outcome.RETRYABLE:
            self._breaker.record_failure(claim.permit)
        else:
            self._breaker.record_success(claim.permit)
        now = self._clock.now()
        deliver_by = record.deliver_by or now + timedelta(seconds=self._deadline_s)
        probe = claim.permit.trial
        if probe:  # the system was known to be down: wait for the next probe, spend nothing
            retry_in_s = self._breaker.seconds_until_probe()
        else:
            # While the breaker is not closed, no retry before its next probe: during a long outage the
            # waiting records take turns as the trial.
            retry_in_s = max(
                self._policy.delay_before_retry(record.retry_count + 1), self._breaker.seconds_until_probe()
            )
        step = next_step(
            classification.outcome,
            now=now,
            deliver_by=deliver_by,
            retries_done=record.retry_count,
            max_retries=record.max_retry_count,
            retry_in_s=retry_in_s,
            probe=probe,
        )
        self._metrics.attempts.labels(self.system_code, classification.outcome.value).inc()
        self._metrics.attempt_seconds.labels(self.system_code).observe(duration_s)
        return CallResult(classification, http_status, step, deliver_by, duration_s)

    async def _send(self, record: SyncRecord) -> tuple[Classification, int | None]:
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

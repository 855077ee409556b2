"""The external systems' channel of the delivery engine, and their fast path.

``SyncChannel`` is the adapter of CRM, CMS and CSS to the delivery engine (``engine.py``): its
ledger is ``sync.external_sync_records`` with the per-customer lanes (a record is admitted only
when its lane allows it), its call is the system's HTTP sink, its reports are the ``sync_*``
metrics and log lines. ``SyncDelivery`` is the engine for one system plus the fast path.

Two callers share this: the partition worker (the fast path, the messages just read
from one partition) and the retry scheduler (records whose next attempt is due).
Neither ever waits for a retry: a transient failure persists the record as
``retrying`` with ``next_attempt_at`` and the partition moves on; the scheduler
picks it up when due, in this or any other connector instance (see docs/delivery.md,
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

Retries go by time (docs/delivery.md): a record is retried with capped exponential
backoff until its deadline (``deliver_by``, the system's delivery deadline after the event was first
seen); only a passed deadline or a permanent refusal fails it. While the system's breaker is open,
records wait without attempts: one trial call at a time probes the system and spends nothing of
the record it carries (no retry, no attempt row), and records whose deadline passes while they
wait are failed by ``expire_overdue``. Every breaker permit taken is released on every path
(exception, cancellation, a database error before the commit): a trial can never be left out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.logging import get_logger
from services.sync_connector.attempts import Attempted, CallResult, log_attempt
from services.sync_connector.batches import AcceptedEvent, SyncClaim, waves
from services.sync_connector.breaker import CircuitBreaker, Permit
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.engine import Admission, Claim, DeliveryEngine, Expired
from services.sync_connector.lanes import Blocker, LaneState, Verdict, judge
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import (
    TERMINAL_STATUSES,
    DeadLetterReason,
    RetryPolicy,
    SyncStatus,
    classify_response,
    classify_transport_error,
)
from services.sync_connector.records import NewRecord, SyncRecord, SyncSettlement, SyncUnitOfWork
from services.sync_connector.sinks import Sink, SinkUnavailableError, encode_payload

log = get_logger(__name__)


class SyncLedger:
    """The records of one system inside one transaction (the engine's ``Ledger``), with the lane rule."""

    def __init__(self, uow: SyncUnitOfWork, system_code: str, metrics: ConnectorMetrics, recheck_s: float) -> None:
        self.records = uow.records
        self._uow = uow
        self._code = system_code
        self._metrics = metrics
        self._recheck_s = recheck_s  # the soonest a parked record is looked at again

    async def due(self, limit: int) -> list[SyncRecord]:
        # Lanes in one order, and never waited for: two schedulers cannot deadlock on them.
        due = await self.records.due(limit)
        return sorted(due, key=lambda r: (r.customer_id, r.profile_version, r.id))

    async def admit(self, record: SyncRecord) -> Admission:
        lane = await self.records.try_lock_lane(record.customer_id)
        if lane is None:
            return Admission.SKIP
        blocker = None if record.status in TERMINAL_STATUSES else await self._blocker(record)
        return Admission.SEND if await self.decide(record, lane, blocker) is Verdict.SEND else Admission.WAIT

    async def _blocker(self, record: SyncRecord) -> Blocker | None:
        return (await self.records.blockers([record])).get(record.id)

    async def decide(self, record: SyncRecord, lane: LaneState, blocker: Blocker | None) -> Verdict:
        """The lane rule's verdict, with what it implies written (superseded, deferred)."""
        verdict = judge(record.state, lane, blocker)
        if verdict is Verdict.SEND:
            return verdict
        logger = _bind(record)
        if verdict is Verdict.FINISHED:
            self._metrics.skipped.labels(self._code).inc()
            logger.info("sync_redelivery_skipped", sync_status=record.status.value)
        elif verdict in (Verdict.IN_FLIGHT, Verdict.SCHEDULED):
            self._metrics.deferred.labels(self._code, verdict.value).inc()
            logger.info("sync_left_to_scheduler", reason=verdict.value, next_attempt_at=str(record.next_attempt_at))
        elif verdict is Verdict.SUPERSEDED:
            await self.records.supersede(record, f"{self._code} already applied version {lane.applied_version}")
            self._metrics.status.labels(self._code, SyncStatus.SUPERSEDED.value).inc()
            logger.info("sync_superseded", applied_version=lane.applied_version)
        else:  # lane busy or parked: wait for the record in flight or the older open one; finishing it wakes us
            waiting_for: int | None
            not_before: datetime | None
            if blocker is not None and verdict is Verdict.PARKED:
                waiting_for, not_before = blocker.id, blocker.next_attempt_at
            else:
                waiting_for, not_before = lane.inflight_record_id, lane.inflight_until
            await self.records.defer(
                record.id, status=record.status, delay_s=self._recheck_s, not_before=not_before, blocked_by=waiting_for
            )
            self._metrics.deferred.labels(self._code, verdict.value).inc()
            logger.info("sync_waiting", reason=verdict.value, blocked_by_record_id=waiting_for)
        return verdict

    async def defer(self, record: SyncRecord, wait_s: float) -> None:
        await self.records.defer(record.id, status=SyncStatus.RETRYING, delay_s=wait_s)

    async def claim(self, records: Sequence[SyncRecord], lease_s: float) -> list[str]:
        return await self.records.claim([r.id for r in records], lease_s)

    async def settle(self, settlements: Sequence[SyncSettlement]) -> list[SyncSettlement]:
        return await self.records.settle(settlements)

    async def expire(self, detail: str, limit: int) -> list[Expired]:
        return await self.records.expire(detail, limit)

    async def commit(self) -> None:
        await self._uow.commit()


@dataclass(eq=False, repr=False)
class SyncChannel:
    """CRM, CMS or CSS as a channel of the delivery engine."""

    engine: AsyncEngine
    sink: Sink
    metrics: ConnectorMetrics
    _: KW_ONLY
    recheck_s: float
    clock: Clock = SYSTEM_CLOCK

    @property
    def code(self) -> str:
        return self.sink.system.code

    @asynccontextmanager
    async def ledger(self) -> AsyncIterator[SyncLedger]:
        async with SyncUnitOfWork(self.engine, self.code, self.clock) as uow:
            yield SyncLedger(uow, self.code, self.metrics, self.recheck_s)

    async def call(self, record: SyncRecord) -> Attempted:
        try:
            response = await self.sink.send(record.event_id, record.sync_data.encode())
        except SinkUnavailableError as exc:
            return Attempted(classify_transport_error(exc.kind, str(exc)))
        classification = classify_response(response.status, response.body, record.profile_version)
        return Attempted(classification, response.status)

    def status_of(self, result: CallResult) -> str:
        return result.status.value

    def deferred(self, record: SyncRecord, wait_s: float) -> None:
        self.metrics.deferred.labels(self.code, "circuit_open").inc()
        _bind(record).info("sync_deferred_circuit_open", retry_in_s=round(wait_s, 3))

    def attempted(self, result: CallResult) -> None:
        self.metrics.attempts.labels(self.code, result.classification.outcome.value).inc()
        self.metrics.attempt_seconds.labels(self.code).observe(result.duration_s)

    def settled(self, settlement: SyncSettlement) -> None:
        record, result = settlement.record, settlement.result
        status = result.status
        if result.counted or status is not record.status:  # a failed probe changes nothing of its record
            self.metrics.status.labels(self.code, status.value).inc()
        retries = record.retry_count + (1 if status is SyncStatus.RETRYING and result.counted else 0)
        log_attempt(_bind(record), result, retries=retries)
        if status is SyncStatus.FAILED:
            self.metrics.dead_letters.labels(self.code, result.dead_letter_reason).inc()

    def lost(self, settlement: SyncSettlement) -> None:
        self.metrics.claims_lost.labels(self.code).inc()
        _bind(settlement.record).warning(
            "sync_claim_lost",
            outcome=settlement.result.classification.outcome.value,
            http_status=settlement.result.http_status,
        )

    def not_recorded(self, count: int, error: Exception, wait_s: float) -> None:
        self.metrics.processing_errors.labels(self.code, "database").inc()
        log.warning("sync_results_not_recorded", records=count, error=repr(error), retry_in_s=round(wait_s, 3))

    def expired(self, expired: Expired, detail: str) -> None:
        self.metrics.status.labels(self.code, SyncStatus.FAILED.value).inc()
        self.metrics.dead_letters.labels(self.code, DeadLetterReason.DEADLINE.value).inc()
        log.error(
            "sync_failed_dead_lettered",
            reason=DeadLetterReason.DEADLINE.value,
            **expired.log_ids("record_id"),
            system_code=self.code,
            error=detail,
            permanent=False,
        )


class SyncDelivery(DeliveryEngine[SyncRecord]):
    """The delivery engine for one external system, plus the fast path for the messages just read."""

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
        self._channel = SyncChannel(engine, sink, metrics, recheck_s=recheck_s, clock=clock)
        super().__init__(
            self._channel,
            breaker,
            policy,
            deadline_s=deadline_s,
            lease_s=lease_s,
            recheck_s=recheck_s,
            on_dead_letter=on_dead_letter,
            clock=clock,
        )
        self._max_retries = policy.max_retries
        self._max_wave = max_wave

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
                self.release(held)
            settled = dict(zip(claims, statuses, strict=True))
            for i in wave:
                event_id = events[i].event_id
                if event_id in settled:
                    status = settled[event_id]
                    outcomes[i] = "claim_lost" if status is None else status
                else:
                    outcomes[i] = verdicts[event_id]
        return outcomes

    async def _open_and_claim(
        self, wave: Sequence[AcceptedEvent], held: list[Permit]
    ) -> tuple[dict[str, SyncClaim], dict[str, str]]:
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
        async with self._channel.ledger() as ledger:
            lanes = await ledger.records.lock_lanes([n.customer_id for n in new])
            opened = await ledger.records.open(
                self._channel.sink.system, new, max_retry_count=self._max_retries, deadline_s=self.deadline_s
            )
            verdicts: dict[str, str] = {}
            to_claim: list[tuple[SyncRecord, Permit]] = []
            for record, blocker in opened:
                verdict = await ledger.decide(record, lanes[record.customer_id], blocker)
                if verdict is Verdict.SEND and (permit := await self.permit_or_defer(ledger, record, held)) is not None:
                    to_claim.append((record, permit))
                else:
                    verdicts[record.event_id] = "circuit_open" if verdict is Verdict.SEND else verdict.value
            tokens = await ledger.claim([r for r, _ in to_claim], self.lease_s)
            claims = [
                Claim(r, token, permit, spans.get(r.event_id))
                for (r, permit), token in zip(to_claim, tokens, strict=True)
            ]
            await ledger.commit()
        return {c.record.event_id: c for c in claims}, verdicts


def _bind(record: SyncRecord) -> structlog.stdlib.BoundLogger:
    return log.bind(
        record_id=record.id,
        event_id=record.event_id,
        customer_id=record.customer_id,
        system_code=record.system_code,
        profile_version=record.profile_version,
    )

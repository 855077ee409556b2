"""One delivery engine for every channel: the external systems (CRM, CMS, CSS) and the customer
notifications (e-mail, SMS).

The engine owns what every channel does the same way, so it exists once:

* **claim**: due records are taken in one transaction, each only if its channel admits it now
  (the external systems' per-customer lanes), under a breaker permit, with a fencing token and a
  lease; no network call inside it (invariant 6);
* **breaker**: one trial at a time while the channel is down; records it refuses wait without an
  attempt; every permit taken is released on every path (an exception, a cancellation, a database
  error before the commit), so a trial can never be left out;
* **schedule**: retries by time (``outcome.next_step``): backoff capped at the policy's maximum,
  until the record's deadline (``deliver_by``); a probe spends nothing of its record; an optional
  count cap;
* **settle**: the calls' results are written (retried through a database outage, never by making
  the call again) only where the claim still holds; a late result of a lost claim is discarded;
* **dead letter**: a permanent refusal or a passed deadline ends the record ``failed``; records
  whose deadline passes while they wait behind the breaker are failed by ``expire_overdue``.

A channel is a small adapter (``ChannelAdapter``): its ledger (the SQL of its table, one
transaction at a time), its call (an HTTP sink; a contact lookup, a rendering and a transport) and
its reports (metrics and log lines under the channel's names). The retry scheduler drives the
engine for due records; the external systems' fast path (``delivery.SyncDelivery``) uses it for
the messages just read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Generic, Protocol, TypeVar

import msgspec
from opentelemetry import trace

from services.sync_connector.attempts import Attempted, CallResult
from services.sync_connector.breaker import CircuitBreaker, Permit
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.outcome import NextStep, Outcome, RetryPolicy, SyncStatus, next_step
from services.sync_connector.settling import DueBatch, settle_until_recorded


class DeliveryRecord(Protocol):
    """What the engine reads of a record of any channel."""

    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def event_headers(self) -> dict[str, str]: ...
    @property
    def tries_spent(self) -> int:
        """Counted failed tries so far: what the backoff and the optional count cap look at."""
        ...

    @property
    def max_tries(self) -> int | None:
        """The optional count cap, in the unit of ``tries_spent`` (None: retried until the deadline)."""
        ...

    @property
    def deliver_by(self) -> datetime | None:
        """The deadline; None: a full one from the next attempt (an admin re-drove the record)."""
        ...


RecordT = TypeVar("RecordT", bound=DeliveryRecord)


class Claim(msgspec.Struct, Generic[RecordT], frozen=True):
    """The right to make one call for a record: shown back (token) when recording the result."""

    record: RecordT
    token: str
    permit: Permit
    span: trace.Span | None = None  # the call's parent; None: the current span


class Settlement(msgspec.Struct, Generic[RecordT], frozen=True):
    """A call's result to write for a record whose claim (``token``) is still to be shown."""

    record: RecordT
    token: str
    result: CallResult


class Expired(msgspec.Struct, frozen=True):
    """A record failed for its passed deadline without being tried."""

    id: int
    event_id: str
    customer_id: str

    def log_ids(self, id_key: str) -> dict[str, object]:
        """Its ids for a log line, the record's own under ``id_key`` (``record_id``, ``notification_id``)."""
        return {id_key: self.id, "event_id": self.event_id, "customer_id": self.customer_id}


class Admission(Enum):
    """Whether a due record may be called now (its channel's rule, e.g. the per-customer lane)."""

    SEND = "send"
    WAIT = "wait"  # not now; the ledger wrote what that means (deferred, superseded...)
    SKIP = "skip"  # could not look (another transaction holds its lane): untouched, seen again soon


class Ledger(Protocol[RecordT]):
    """A channel's records inside one transaction."""

    async def due(self, limit: int) -> list[RecordT]:
        """Open records whose attempt time has come, locked; rows locked by others are skipped."""
        ...

    async def admit(self, record: RecordT) -> Admission: ...

    async def defer(self, record: RecordT, wait_s: float) -> None:
        """No call now (the breaker is open): look again after ``wait_s``, no attempt spent."""
        ...

    async def claim(self, records: Sequence[RecordT], lease_s: float) -> list[str]:
        """Take the records for one call each; the fencing tokens their results must show, in order."""
        ...

    async def settle(self, settlements: Sequence[Settlement[RecordT]]) -> list[Settlement[RecordT]]:
        """Write the results whose claims still hold; returns those."""
        ...

    async def expire(self, detail: str, limit: int) -> list[Expired]:
        """Fail up to ``limit`` open records past their deadline that nobody is calling for."""
        ...

    async def commit(self) -> None: ...


class ChannelAdapter(Protocol[RecordT]):
    """What one channel adds to the engine: its table, its call and its reports."""

    @property
    def code(self) -> str:
        """``CRM``, ``CMS``, ``CSS``, ``EMAIL``, ``SMS``: the breaker's and the scheduler's label."""
        ...

    def ledger(self) -> AbstractAsyncContextManager[Ledger[RecordT]]: ...

    async def call(self, record: RecordT) -> Attempted: ...

    def status_of(self, result: CallResult) -> str:
        """The record's status after ``result``, in the channel's words."""
        ...

    def deferred(self, record: RecordT, wait_s: float) -> None: ...
    def attempted(self, result: CallResult) -> None: ...
    def settled(self, settlement: Settlement[RecordT]) -> None: ...
    def lost(self, settlement: Settlement[RecordT]) -> None: ...
    def not_recorded(self, count: int, error: Exception, wait_s: float) -> None: ...
    def expired(self, expired: Expired, detail: str) -> None: ...


@dataclass(eq=False, repr=False)
class DeliveryEngine(Generic[RecordT]):
    adapter: ChannelAdapter[RecordT]
    breaker: CircuitBreaker
    policy: RetryPolicy
    _: KW_ONLY
    deadline_s: float
    lease_s: float
    recheck_s: float  # the soonest a deferred record is looked at again
    on_dead_letter: Callable[[], None] = lambda: None
    clock: Clock = SYSTEM_CLOCK

    @property
    def system_code(self) -> str:
        return self.adapter.code

    # -- claim ------------------------------------------------------------------------------------------

    async def claim_due(self, limit: int) -> DueBatch[Claim[RecordT]]:
        """For the retry scheduler: decide about up to ``limit`` due records, claiming those to call now."""
        claims: list[Claim[RecordT]] = []
        skipped = 0
        held: list[Permit] = []
        try:
            async with self.adapter.ledger() as ledger:
                due = await ledger.due(limit)
                for record in due:
                    admission = await ledger.admit(record)
                    if admission is Admission.SKIP:
                        skipped += 1
                    elif (
                        admission is Admission.SEND
                        and (permit := await self.permit_or_defer(ledger, record, held)) is not None
                    ):
                        (token,) = await ledger.claim([record], self.lease_s)
                        claims.append(Claim(record, token, permit))
                await ledger.commit()
        except BaseException:  # no call will be made: a half-open breaker must not wait for its trial
            self.release(held)
            raise
        return DueBatch(claims, len(due), skipped)

    async def permit_or_defer(self, ledger: Ledger[RecordT], record: RecordT, held: list[Permit]) -> Permit | None:
        """A breaker permit for a call of ``record`` (appended to ``held`` at once: the caller releases what
        held whatever happens next), or None after deferring the record to the next probe."""
        permit = self.breaker.acquire()
        if permit is not None:
            held.append(permit)
            return permit
        # Deferred, not failed: no attempt is spent while the channel is known to be down.
        wait_s = max(self.breaker.seconds_until_probe(), self.recheck_s)
        await ledger.defer(record, wait_s)
        self.adapter.deferred(record, wait_s)
        return None

    def release(self, permits: Iterable[Permit]) -> None:
        """Give permits back; a no-op for those whose call reported its result."""
        for permit in permits:
            self.breaker.release(permit)

    # -- call, decide, settle ---------------------------------------------------------------------------

    async def attempt(self, claim: Claim[RecordT], stop: asyncio.Event) -> str | None:
        """Make the claimed call and record its result: the record's new status, None when the claim was lost."""
        (status,) = await self.attempt_many([claim], stop)
        return status

    async def attempt_many(self, claims: Sequence[Claim[RecordT]], stop: asyncio.Event) -> list[str | None]:
        """Make the claimed calls concurrently, then record their results in one transaction.

        Per claim: the record's new status, or None when the claim was lost meanwhile.
        """
        if not claims:
            return []
        try:
            results = await asyncio.gather(*(self._call(claim) for claim in claims))
        finally:  # cancelled before a call began (or its task never ran): its permit must not stay out
            self.release(claim.permit for claim in claims)
        settlements = [Settlement(c.record, c.token, r) for c, r in zip(claims, results, strict=True)]

        def not_recorded(exc: Exception, wait_s: float) -> None:
            self.adapter.not_recorded(len(settlements), exc, wait_s)

        kept = await settle_until_recorded(lambda: self._settle_once(settlements), stop, not_recorded)
        recorded = {s.record.id for s in kept}
        statuses: list[str | None] = []
        for claim, settlement in zip(claims, settlements, strict=True):
            # Reported in the call's span, so the lines carry its trace id.
            with trace.use_span(claim.span or trace.get_current_span(), end_on_exit=False):
                if settlement.record.id in recorded:
                    self.adapter.settled(settlement)
                    statuses.append(self.adapter.status_of(settlement.result))
                else:
                    self.adapter.lost(settlement)
                    statuses.append(None)
        if any(s.record.id in recorded and s.result.dead_lettered for s in settlements):
            self.on_dead_letter()
        return statuses

    async def _settle_once(self, settlements: Sequence[Settlement[RecordT]]) -> list[Settlement[RecordT]]:
        async with self.adapter.ledger() as ledger:
            kept = await ledger.settle(settlements)
            await ledger.commit()
        return kept

    async def _call(self, claim: Claim[RecordT]) -> CallResult:
        record = claim.record
        started = time.monotonic()
        try:
            if claim.span is None:
                attempted = await self.adapter.call(record)
            else:
                with trace.use_span(claim.span, end_on_exit=False):
                    attempted = await self.adapter.call(record)
        except BaseException:  # cancelled: no result, and a half-open breaker must not wait for it
            self.breaker.release(claim.permit)
            raise
        duration_s = time.monotonic() - started
        if not attempted.reached:  # not called (no contact, no valid address...): the breaker learns nothing
            self.breaker.release(claim.permit)
        elif attempted.classification.outcome is Outcome.RETRYABLE:
            self.breaker.record_failure(claim.permit)
        else:
            self.breaker.record_success(claim.permit)
        result = CallResult(attempted, self._next_step(claim, attempted), self._deadline(record), duration_s)
        self.adapter.attempted(result)
        return result

    def _deadline(self, record: RecordT) -> datetime:
        return record.deliver_by or self.clock.now() + timedelta(seconds=self.deadline_s)

    def _next_step(self, claim: Claim[RecordT], attempted: Attempted) -> NextStep:
        if attempted.final_status is not None:  # the channel's own end (nothing to send): no retry
            return NextStep(SyncStatus.SUCCESS)
        record = claim.record
        probe = claim.permit.trial and attempted.reached
        if probe:  # the channel was known to be down: wait for the next probe, spend nothing
            retry_in_s = self.breaker.seconds_until_probe()
        else:
            # While the breaker is not closed, no retry before its next probe: during a long outage the
            # waiting records take turns as the trial.
            retry_in_s = max(self.policy.delay_before_retry(record.tries_spent + 1), self.breaker.seconds_until_probe())
        return next_step(
            attempted.classification.outcome,
            now=self.clock.now(),
            deliver_by=self._deadline(record),
            retries_done=record.tries_spent,
            max_retries=record.max_tries,
            retry_in_s=retry_in_s,
            probe=probe,
        )

    # -- deadline ---------------------------------------------------------------------------------------

    async def expire_overdue(self, limit: int) -> int:
        """Fail up to ``limit`` waiting records whose deadline passed while the channel was down; returns how
        many. The retry scheduler calls this while the breaker is not closed."""
        detail = f"delivery deadline passed while {self.system_code} was unavailable."
        async with self.adapter.ledger() as ledger:
            expired = await ledger.expire(detail, limit)
            await ledger.commit()
        for record in expired:
            self.adapter.expired(record, detail)
        if expired:
            self.on_dead_letter()
        return len(expired)

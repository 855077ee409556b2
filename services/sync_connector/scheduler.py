"""The retry scheduler of one external system: delivers records whose next attempt is due.

Retries are moved off the Kafka partition (the design decision, see docs/delivery.md,
"Sync-connector"): a transient failure, an open circuit breaker, or a record
waiting behind an older delivery of its customer is stored with
``next_attempt_at``; this loop, running in every connector instance, claims due
records (``FOR UPDATE SKIP LOCKED``, so instances share the work without
overlap) and calls the system with at most ``concurrency`` calls in flight.
It respects the system's circuit breaker: nothing is claimed while it is open,
one trial record when its cool-down has passed; meanwhile, once per poll, it
fails the waiting records whose delivery deadline has passed (``expire_overdue``).
Every claim's breaker permit is released when its task ends, however it ends
(a task cancelled before it ran included). Each system has its own loop, so one
system's backlog or outage never delays another.

The customer notifications (``notify``) use this loop too, one per channel: the
delivery engine of any channel fits (``ScheduledDelivery``), and ``wake`` lets the
writer of a new record skip the poll wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import KW_ONLY, dataclass, field
from typing import Generic, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from libs.kit.logging import get_logger
from libs.kit.telemetry import context_from_headers
from services.sync_connector.breaker import CircuitBreaker, Permit
from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.engine import DeliveryRecord
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.settling import DueBatch, SettleInterruptedError
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

ERROR_BACKOFF = RetryPolicy(max_retries=0, base_s=0.5, max_s=10.0)
EXPIRE_BATCH = 500  # records failed for their passed deadline per round, while the system is down


class ScheduledClaim(Protocol):
    """What the scheduler reads of a claim: its record (for its span and log lines) and its permit."""

    @property
    def record(self) -> DeliveryRecord: ...
    @property
    def permit(self) -> Permit: ...


ClaimT = TypeVar("ClaimT", bound=ScheduledClaim)


class ScheduledDelivery(Protocol[ClaimT]):
    @property
    def system_code(self) -> str: ...

    async def claim_due(self, limit: int) -> DueBatch[ClaimT]: ...

    async def expire_overdue(self, limit: int) -> int:
        """Fail waiting records whose deadline passed (the system is down); how many."""
        ...

    async def attempt(self, claim: ClaimT, stop: asyncio.Event) -> str | None:
        """Make the claimed call and record it: the record's new status, None when the claim was lost."""
        ...


@dataclass(eq=False, repr=False)
class RetryScheduler(Generic[ClaimT]):
    delivery: ScheduledDelivery[ClaimT]
    breaker: CircuitBreaker
    metrics: ConnectorMetrics
    tracer: trace.Tracer
    _: KW_ONLY
    poll_interval_s: float
    concurrency: int
    grace_s: float
    span_name: str = ""
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _slot_freed: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _woken: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.span_name = self.span_name or f"sync retry {self.code}"

    @property
    def code(self) -> str:
        return self.delivery.system_code

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"retry-scheduler-{self.code}")

    def wake(self) -> None:
        """Look for due records now rather than after the poll interval (a record was just committed)."""
        self._woken.set()

    async def stop(self) -> None:
        """Stop claiming; let calls in flight finish and record (bounded by the grace period)."""
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=self.grace_s)
            for task in pending:  # their claims' leases end and another instance repeats the call
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        failures = 0
        expired_at = float("-inf")
        while not self._stop.is_set():
            allowed = self.breaker.calls_allowed()
            if allowed is not None and time.monotonic() - expired_at >= self.poll_interval_s:
                expired_at = time.monotonic()
                if not await self._expire_overdue():
                    await self._wait(self.poll_interval_s)
                    continue
            if allowed == 0:
                await self._wait(min(max(self.breaker.seconds_until_probe(), 0.01), self.poll_interval_s))
                continue
            free = self.concurrency - len(self._in_flight)
            if free <= 0:
                self._slot_freed.clear()
                await self._wait_for_slot()
                continue
            limit = free if allowed is None else min(free, allowed)
            try:
                batch = await self.delivery.claim_due(limit)
            except DATABASE_FAULTS as exc:
                failures += 1
                self.metrics.scheduler_errors.labels(self.code).inc()
                wait_s = ERROR_BACKOFF.delay_before_retry(failures)
                log.warning("retry_scheduler_failed", system_code=self.code, error=repr(exc), retry_in_s=wait_s)
                await self._wait(wait_s)
                continue
            failures = 0
            for claim in batch.claims:
                self._launch(claim)
            # A full batch that made progress means more may be due right now; otherwise wait a poll
            # (a wake-up, set before or during this round, cuts it short: no new record waits a poll).
            if batch.examined < limit or batch.skipped == batch.examined:
                await self._sleep(self.poll_interval_s, self._woken)
                self._woken.clear()

    async def _expire_overdue(self) -> bool:
        """While the system is down: fail the waiting records whose deadline passed. False on a database fault."""
        try:
            await self.delivery.expire_overdue(EXPIRE_BATCH)
        except DATABASE_FAULTS as exc:
            self.metrics.scheduler_errors.labels(self.code).inc()
            log.warning("retry_scheduler_expiry_failed", system_code=self.code, error=repr(exc))
            return False
        return True

    def _launch(self, claim: ClaimT) -> None:
        self.metrics.scheduled_claims.labels(self.code).inc()
        task = asyncio.create_task(self._attempt(claim), name=f"retry-{self.code}-{claim.record.id}")
        self._in_flight.add(task)
        task.add_done_callback(lambda done: self._done(done, claim.permit))

    def _done(self, task: asyncio.Task[None], permit: Permit) -> None:
        # A no-op when the call reported its result; frees the trial of a task that never got to call.
        self.breaker.release(permit)
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _attempt(self, claim: ClaimT) -> None:
        # The retry continues the trace of the transaction that wrote the event.
        with self.tracer.start_as_current_span(
            self.span_name,
            context=context_from_headers(dict(claim.record.event_headers)),
            kind=SpanKind.INTERNAL,
            attributes={"messaging.message.id": claim.record.event_id, "sync.record_id": claim.record.id},
        ) as span:
            try:
                status = await self.delivery.attempt(claim, self._stop)
            except SettleInterruptedError:
                log.info("retry_result_left_to_lease", system_code=self.code, record_id=claim.record.id)
                return
            except Exception:
                # The claim's lease ends and the record is due again: nothing is lost.
                log.exception("retry_attempt_failed", system_code=self.code, record_id=claim.record.id)
                return
            span.set_attribute("sync.status", "claim_lost" if status is None else str(status))

    async def _wait(self, seconds: float) -> None:
        await wait_until_set(self._stop, seconds)

    async def _wait_for_slot(self) -> None:
        await self._sleep(self.poll_interval_s, self._slot_freed)

    async def _sleep(self, seconds: float, also: asyncio.Event) -> None:
        """Up to ``seconds``; stopping or ``also`` being set cuts it short."""
        waiters = {asyncio.create_task(self._stop.wait()), asyncio.create_task(also.wait())}
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

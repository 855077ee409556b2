"""A consumer's partition worker: one partition's messages, strictly in order, handed to the handler in batches.

The worker hands the handler everything buffered for its partition (up to
``MAX_HANDLER_BATCH`` messages, in offset order) at once, and knows the next
offset to commit: past the last message of a batch whose handler returned or
that was dead-lettered (``consumer.SystemConsumer`` commits it).

A handler that raises a transient error (database or broker unavailable, a
timeout: ``unprocessable.classify_processing_error``) is retried with backoff on
the same batch for as long as it lasts (an outage must not lose it); the
partition waits behind it, others go on. Any other error may be one message's
doing: the batch is split in halves, each handled in order, down to the one
message that fails; that message, failing alone ``after_failures`` times in a
row, is dead-lettered alone (``UnprocessableMessages``) and the partition goes
on. Undecodable messages the handler reports at once (``UndecodableMessagesError``)
are dead-lettered without retries. A fault that is no message's doing (a bug hit
by every message) would dead-letter them all: after ``streak_limit`` messages
dead-lettered in a row on a partition without one success in between, the worker
takes the fault for systemic and retries with backoff instead, until it clears.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field

import msgspec
from aiokafka import TopicPartition

from libs.kit.logging import get_logger
from services.sync_connector.messages import KafkaMessage
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.unprocessable import (
    HANDLER_FAILED,
    UNDECODABLE,
    Rejected,
    UndecodableMessagesError,
    UnprocessableMessages,
    classify_processing_error,
)
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

# A handler must finish the messages, or raise; when ``stop`` is set it may give up
# (raise) and the messages are left uncommitted for the next owner.
MessageHandler = Callable[[Sequence[KafkaMessage], asyncio.Event], Awaitable[None]]

# The most messages of one partition handed to the handler at once.
MAX_HANDLER_BATCH = 500
# Waits between retries of a message after an infrastructure error (database down...), and between
# consumer restarts. Those are retried until they clear, so max_retries is not consulted.
PROCESSING_ERROR_BACKOFF = RetryPolicy(max_retries=0, base_s=0.5, max_s=10.0)


class UnprocessablePolicy(msgspec.Struct, frozen=True):
    """When a message is dead-lettered alone, and when a run of failures is taken for systemic."""

    after_failures: int = 3
    streak_limit: int = 5


DEFAULT_UNPROCESSABLE = UnprocessablePolicy()


@dataclass(eq=False, repr=False)
class PartitionWorker:
    """Processes one partition's messages strictly in order and knows the next offset to commit."""

    tp: TopicPartition
    handler: MessageHandler
    system_code: str
    metrics: ConnectorMetrics
    _: KW_ONLY
    dead_letters: UnprocessableMessages
    policy: UnprocessablePolicy
    next_offset: int | None = field(default=None, init=False)
    _processing: bool = field(default=False, init=False)
    _streak: int = field(default=0, init=False)  # messages dead-lettered for a handler failure since the last success
    _queue: asyncio.Queue[KafkaMessage | None] = field(default_factory=asyncio.Queue, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        tp = self.tp
        self._task = asyncio.create_task(self._run(), name=f"sync-{self.system_code}-{tp.topic}-{tp.partition}")

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        """Every message pushed so far is processed."""
        return not self._processing and self._queue.empty()

    def push(self, messages: Iterable[KafkaMessage]) -> None:
        for message in messages:
            self._queue.put_nowait(message)

    async def stop(self, grace_s: float) -> None:
        """Finish the in-flight message (bounded by ``grace_s``); queued ones are dropped, not committed."""
        self._stop.set()
        self._queue.put_nowait(None)  # wakes an idle worker
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            log.warning("partition_worker_abandoned", system_code=self.system_code, partition=self.tp.partition)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            batch = await self._next_batch()
            if not batch or self._stop.is_set():
                return
            self._processing = True
            try:
                if not await self._process(batch):
                    return
                self.next_offset = batch[-1].offset + 1
            finally:
                self._processing = False

    async def _next_batch(self) -> list[KafkaMessage]:
        """Waits for a message, then takes what else is buffered (bounded); empty when stopping."""
        message = await self._queue.get()
        batch: list[KafkaMessage] = []
        while message is not None and len(batch) < MAX_HANDLER_BATCH:
            batch.append(message)
            if self._queue.empty() or len(batch) == MAX_HANDLER_BATCH:
                return batch
            message = self._queue.get_nowait()
        return []  # the stop sentinel

    async def _process(self, batch: Sequence[KafkaMessage]) -> bool:  # noqa: PLR0911 - one return per rule
        """True once the handler finished the batch (its unprocessable messages dead-lettered); False when
        stopping first."""
        failures = 0  # in a row, of this batch
        alone_failures = 0  # not transient, with the batch down to one message
        while True:
            try:
                await self.handler(batch, self._stop)
            except UndecodableMessagesError as exc:
                if not await self._dead_letter_undecodable(exc.rejected):
                    return False
                rejected = {r.message.offset for r in exc.rejected}
                batch = [message for message in batch if message.offset not in rejected]
                if not batch:
                    return True
                continue
            except Exception as exc:
                if self._stop.is_set():
                    return False
                failures += 1
                kind, transient = classify_processing_error(exc)
                self.metrics.processing_errors.labels(self.system_code, kind).inc()
                systemic = self._streak >= self.policy.streak_limit
                if not transient and not systemic:
                    if len(batch) > 1:
                        return await self._isolate(batch, exc, kind)
                    alone_failures += 1
                    if alone_failures >= self.policy.after_failures:
                        return await self._dead_letter(batch[0], HANDLER_FAILED, _describe(exc), alone_failures)
                delay = PROCESSING_ERROR_BACKOFF.delay_before_retry(failures)
                log.exception(
                    "message_processing_failed",
                    system_code=self.system_code,
                    kind=kind,
                    transient=transient,
                    systemic=systemic,
                    partition=batch[0].partition,
                    offset=batch[0].offset,
                    messages=len(batch),
                    retry_in_s=round(delay, 3),
                )
                if await wait_until_set(self._stop, delay):
                    return False
            else:
                self._streak = 0
                return True

    async def _isolate(self, batch: Sequence[KafkaMessage], exc: Exception, kind: str) -> bool:
        """Handle the halves in order, so the failing message ends up alone (the messages before it that were
        already recorded are recognised as redeliveries)."""
        middle = len(batch) // 2
        log.warning(
            "message_batch_split",
            system_code=self.system_code,
            kind=kind,
            error=_describe(exc),
            partition=batch[0].partition,
            offset=batch[0].offset,
            messages=len(batch),
        )
        return await self._process(batch[:middle]) and await self._process(batch[middle:])

    async def _dead_letter_undecodable(self, rejected: Sequence[Rejected]) -> bool:
        for item in rejected:
            if not await self._dead_letter(item.message, UNDECODABLE, item.error, 1):
                return False
        return True

    async def _dead_letter(self, message: KafkaMessage, reason: str, error: str, failures: int) -> bool:
        """Record the message as unprocessable, retrying through a database outage; False when stopping first."""
        attempts = 0
        while True:
            try:
                await self.dead_letters.record(self.system_code, message, reason=reason, error=error, failures=failures)
            except Exception as exc:
                attempts += 1
                kind, _ = classify_processing_error(exc)
                self.metrics.processing_errors.labels(self.system_code, kind).inc()
                delay = PROCESSING_ERROR_BACKOFF.delay_before_retry(attempts)
                log.exception(
                    "message_dead_letter_not_recorded",
                    system_code=self.system_code,
                    kind=kind,
                    partition=message.partition,
                    offset=message.offset,
                    retry_in_s=round(delay, 3),
                )
                if await wait_until_set(self._stop, delay):
                    return False
            else:
                if reason == HANDLER_FAILED:
                    self._streak += 1
                return True


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

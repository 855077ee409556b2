"""One Kafka consumer group per external system; partitions run concurrently, in order within each.

A partition's worker hands the handler everything buffered for it (up to
``MAX_HANDLER_BATCH`` messages, in offset order) at once. Offsets are committed
only up to the last message of a batch whose handler returned, that is, whose
sync records are written (invariant 2), or that was dead-lettered. Handlers
never wait for a delivery retry: those live in the database and the retry
scheduler makes them.

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
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from libs.kit.kafka import KafkaSettings, make_consumer
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

FETCH_WAIT_MS = 200
MAX_FETCH_RECORDS = 500
# Above this many buffered messages a partition is paused, so one stuck key does not fill memory.
MAX_PARTITION_BACKLOG = 1_000
# The most messages of one partition handed to the handler at once.
MAX_HANDLER_BATCH = 500
# Waits between retries of a message after an infrastructure error (database down...), and between
# consumer restarts. Those are retried until they clear, so max_retries is not consulted.
PROCESSING_ERROR_BACKOFF = RetryPolicy(max_retries=0, base_s=0.5, max_s=10.0)
# aiokafka retries a commit that fails with a retriable error (e.g. UnknownTopicOrPartition from a broker
# that lost its topic) until it succeeds, possibly for ever; the fetch loop must not wait on it.
COMMIT_TIMEOUT_S = 5.0


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


@dataclass(eq=False, repr=False)
class SystemConsumer:
    """The consumer group of one external system."""

    system_code: str
    _: KW_ONLY
    kafka: KafkaSettings
    topic: str
    group_id: str
    handler: MessageHandler
    metrics: ConnectorMetrics
    grace_s: float
    dead_letters: UnprocessableMessages
    unprocessable: UnprocessablePolicy = DEFAULT_UNPROCESSABLE
    started: bool = field(default=False, init=False)
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _workers: dict[TopicPartition, PartitionWorker] = field(default_factory=dict, init=False)
    _committed: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    _assigned: frozenset[TopicPartition] = field(default=frozenset(), init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        return self._assigned

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group_id}")

    async def stop(self) -> None:
        """Stop fetching, finish in-flight messages, commit, leave the group."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        """Supervise the consumer: a crash restarts it (from the committed offsets) instead of going silent."""
        restarts = 0
        while not self._stopping.is_set():
            consumer = await self._connect()
            if consumer is None:
                return
            try:
                await self._fetch_loop(consumer)
            except Exception:
                restarts += 1
                self.metrics.consumer_errors.labels(self.system_code, "crash").inc()
                log.exception("consumer_crashed", group_id=self.group_id, restarts=restarts)
            finally:
                await self._teardown(consumer)
                self.started, self._consumer, self._assigned = False, None, frozenset()
                self._committed.clear()
                self.metrics.assigned_partitions.labels(self.system_code).set(0)
                log.info("consumer_stopped", group_id=self.group_id)
            if not self._stopping.is_set():
                await self._sleep(PROCESSING_ERROR_BACKOFF.delay_before_retry(restarts))

    async def _teardown(self, consumer: AIOKafkaConsumer) -> None:
        """Release the workers and stop the consumer, each bounded: after a broker crash the consumer's
        connections may be broken (aiokafka's stop and commit then wait or fail), and a teardown that
        never ends would keep this system from consuming again."""
        for step, bound_s in (
            (self._release(consumer, list(self._workers)), self.grace_s + COMMIT_TIMEOUT_S),
            (consumer.stop(), COMMIT_TIMEOUT_S),
        ):
            try:
                await asyncio.wait_for(step, bound_s)
            except Exception as exc:  # noqa: BLE001 - the consumer is rebuilt from the committed offsets
                self.metrics.consumer_errors.labels(self.system_code, "teardown").inc()
                log.warning("consumer_teardown_failed", group_id=self.group_id, error=repr(exc), bound_s=bound_s)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        await wait_until_set(self._stopping, seconds)

    async def _connect(self) -> AIOKafkaConsumer | None:
        """The broker may be down at start-up: retry until it answers or we are stopped."""
        delay = 0.2
        while not self._stopping.is_set():
            consumer = make_consumer(self.kafka, self.topic, self.group_id)
            consumer.subscribe([self.topic], listener=_RebalanceListener(self))
            try:
                await consumer.start()
            except KafkaError as exc:
                await consumer.stop()
                self.metrics.consumer_errors.labels(self.system_code, "connect").inc()
                log.warning("broker_unavailable", group_id=self.group_id, error=repr(exc), retry_in_s=delay)
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                self._consumer, self.started = consumer, True
                log.info("consumer_started", group_id=self.group_id, topic=self.topic)
                return consumer
        return None

    async def _fetch_loop(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=MAX_FETCH_RECORDS)
            except KafkaError as exc:
                self.metrics.consumer_errors.labels(self.system_code, "fetch").inc()
                log.warning("fetch_failed", group_id=self.group_id, error=repr(exc))
                await self._sleep(1.0)
                continue
            assignment = consumer.assignment()
            for tp, messages in batches.items():
                if tp in assignment:  # records fetched just before a revocation belong to the next owner
                    self._worker_for(tp).push(messages)
            self._apply_backpressure(consumer, assignment)
            await self._commit(consumer, self._workers.values())
            self._report_lag(consumer, assignment)

    def _report_lag(self, consumer: AIOKafkaConsumer, assignment: Collection[TopicPartition]) -> None:
        """Lag per assigned partition: what this system still has to settle there."""
        for tp in assignment:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue  # nothing fetched from it yet
            stable = consumer.last_stable_offset(tp)
            if stable is not None and stable >= 0:
                highwater = stable  # read_committed: an open transaction's records are not readable yet
            committed = self._committed.get(tp)
            if committed is None:
                worker = self._workers.get(tp)
                committed = worker.next_offset if worker is not None and worker.next_offset is not None else highwater
            self.metrics.consumer_lag.labels(self.system_code, str(tp.partition)).set(max(0, highwater - committed))

    def _worker_for(self, tp: TopicPartition) -> PartitionWorker:
        if (worker := self._workers.get(tp)) is None:
            worker = self._workers[tp] = PartitionWorker(
                tp,
                self.handler,
                self.system_code,
                self.metrics,
                dead_letters=self.dead_letters,
                policy=self.unprocessable,
            )
        return worker

    def _apply_backpressure(self, consumer: AIOKafkaConsumer, assignment: Collection[TopicPartition]) -> None:
        paused = consumer.paused()
        for tp, worker in self._workers.items():
            if tp not in assignment:
                continue
            if worker.backlog >= MAX_PARTITION_BACKLOG and tp not in paused:
                consumer.pause(tp)
            elif worker.backlog < MAX_PARTITION_BACKLOG // 2 and tp in paused:
                consumer.resume(tp)

    async def _commit(self, consumer: AIOKafkaConsumer, workers: Iterable[PartitionWorker]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for worker in workers:
            if worker.next_offset is None:
                continue
            offset = worker.next_offset
            if worker.idle and worker.tp in consumer.assignment():
                # Past the transaction markers and aborted records the consumer skipped after the last
                # processed message: committed there, the group shows no lag on a transactional topic.
                offset = max(offset, await consumer.position(worker.tp))
            if self._committed.get(worker.tp) != offset:
                offsets[worker.tp] = offset
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), COMMIT_TIMEOUT_S)
        # RuntimeError: aiokafka writing to a connection the broker's crash closed (uvloop refuses it).
        except (KafkaError, TimeoutError, RuntimeError) as exc:  # committed again on the next round
            self.metrics.consumer_errors.labels(self.system_code, "commit").inc()
            log.warning("commit_failed", group_id=self.group_id, error=repr(exc), timeout_s=COMMIT_TIMEOUT_S)
        else:
            self._committed.update(offsets)

    async def _release(self, consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition]) -> None:
        """Stop the workers of these partitions and commit what they finished."""
        workers = [self._workers.pop(tp) for tp in tps if tp in self._workers]
        await asyncio.gather(*(worker.stop(self.grace_s) for worker in workers))
        await self._commit(consumer, workers)
        for worker in workers:
            self._committed.pop(worker.tp, None)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._assigned = frozenset()
        if self._consumer is not None:
            await self._release(self._consumer, revoked)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned = frozenset(assigned)
        self.metrics.assigned_partitions.labels(self.system_code).set(len(assigned))
        log.info("partitions_assigned", group_id=self.group_id, partitions=sorted(tp.partition for tp in assigned))


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, owner: SystemConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.on_assigned(assigned)

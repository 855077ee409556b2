"""One Kafka consumer group per external system; partitions run concurrently, in order within each.

Each assigned partition has its ``PartitionWorker`` (``partition_worker``), which
hands the handler everything buffered for it (up to ``MAX_HANDLER_BATCH``
messages, in offset order) at once. Offsets are committed only up to the last
message of a batch whose handler returned, that is, whose sync records are
written (invariant 2), or that was dead-lettered. Handlers never wait for a
delivery retry: those live in the database and the retry scheduler makes them.
How a worker retries, isolates and dead-letters a failing message is told in
``partition_worker``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from dataclasses import KW_ONLY, dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from libs.kit.kafka import KafkaSettings, make_consumer
from libs.kit.logging import get_logger
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.partition_worker import (
    DEFAULT_UNPROCESSABLE,
    PROCESSING_ERROR_BACKOFF,
    MessageHandler,
    PartitionWorker,
    UnprocessablePolicy,
)
from services.sync_connector.unprocessable import UnprocessableMessages
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

FETCH_WAIT_MS = 200
MAX_FETCH_RECORDS = 500
# Above this many buffered messages a partition is paused, so one stuck key does not fill memory.
MAX_PARTITION_BACKLOG = 1_000
# aiokafka retries a commit that fails with a retriable error (e.g. UnknownTopicOrPartition from a broker
# that lost its topic) until it succeeds, possibly for ever; the fetch loop must not wait on it.
COMMIT_TIMEOUT_S = 5.0


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

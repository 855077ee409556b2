"""Dead letters: the ``sync.dead_letters`` rows and their publisher to ``<topic>.dlq.<system>``.

A dead-letter row is written in the same transaction that marks a record
``failed``; publishing it is a network call, so it happens afterwards, from this
table (a small outbox of its own): rows are claimed with a lease, produced, then
marked published. A crash or a broker outage leaves rows unpublished and they
are published later, so the topic gets every dead letter at least once (a
consumer dedupes by ``ce_id`` + ``x-dlq-system``, as for the main topic).

The messages themselves (headers, ``x-dlq-*``) are told in ``dead_letter_messages``,
the statements that claim and mark the rows are in ``dead_letter_sql``.

The publisher is supervised: a round that fails on Kafka, the database or a
misconfigured topic is retried with backoff; the loop ending on any other
exception is logged (``dead_letter_publisher_crashed``), counted
(``sync_dead_letter_publish_errors_total{kind="unexpected"}``) and restarted with
backoff. A row whose message cannot be built is set aside for its lease (with
``publish_error``) and the others go out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from functools import partial
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.kafka import KafkaConfigError, KafkaSettings, make_producer
from libs.kit.kafka_topics import prepare_topics
from libs.kit.logging import get_logger
from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.dead_letter_messages import (
    DeadLetter,
    Outgoing,
    UnprocessableLetter,
    dead_letter_message,
    outgoing_letter,
    outgoing_unprocessable,
    unprocessable_message,
)
from services.sync_connector.dead_letter_sql import PUBLICATIONS
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

BATCH_SIZE = 100
PUBLISH_LEASE_S = 60.0
ERROR_BACKOFF = RetryPolicy(max_retries=0, base_s=0.5, max_s=15.0)


@dataclass(eq=False, repr=False)
class DeadLetterPublisher:
    """Publishes unpublished dead letters; woken by ``notify()`` when one is written, else polls."""

    engine: AsyncEngine
    kafka: KafkaSettings
    topic_for: Callable[[str], str]
    metrics: ConnectorMetrics
    _: KW_ONLY
    poll_interval_s: float
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _producer: AIOKafkaProducer | None = field(default=None, init=False)
    _topics_ready: set[str] = field(default_factory=set, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _crashes: int = field(default=0, init=False)  # the publishing loop's, in a row (reset by a round that went through)

    def notify(self) -> None:
        self._wake.set()

    async def prepare_topics(self, system_codes: Iterable[str], timeout_s: float) -> None:
        """Create the systems' dead-letter topics if missing and check them before the connector starts.

        A topic less durable than the settings (replication factor, ``min.insync.replicas``) or a broker
        that refuses our credentials or certificate is a ``KafkaConfigError``: the connector must not
        start. A broker that does not answer within ``timeout_s`` is not: each topic is then prepared
        and checked before its first dead letter is published.
        """
        topics = list(dict.fromkeys(self.topic_for(code) for code in system_codes))
        try:
            await asyncio.wait_for(prepare_topics(self.kafka, topics), timeout_s)
        except KafkaConfigError:
            raise
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("dead_letter_topics_unchecked", topics=topics, error=repr(exc))
            return
        self._topics_ready.update(topics)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dead-letter-publisher")

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def _run(self) -> None:
        """Supervise the publishing loop: it ending on any exception is logged, counted and restarted with
        backoff, so dead letters never stop going out silently."""
        while not self._stop.is_set():
            try:
                await self._publish_loop()
            except Exception as exc:
                self._crashes += 1
                self.metrics.dead_letter_publish_errors.labels("unexpected").inc()
                wait_s = ERROR_BACKOFF.delay_before_retry(self._crashes)
                log.exception(
                    "dead_letter_publisher_crashed",
                    error=repr(exc),
                    crashes_in_a_row=self._crashes,
                    restart_in_s=round(wait_s, 3),
                )
                await self._drop_producer()
                await wait_until_set(self._stop, wait_s)  # not cut short by notify(): no hot restart loop
                if not self._stop.is_set():
                    log.info("dead_letter_publisher_restarted", crashes_in_a_row=self._crashes)

    async def _publish_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                claimed = await self.publish_once()
            except (KafkaError, KafkaConfigError, *DATABASE_FAULTS) as exc:
                failures += 1
                kind = _error_kind(exc)
                self.metrics.dead_letter_publish_errors.labels(kind).inc()
                wait_s = ERROR_BACKOFF.delay_before_retry(failures)
                # A misconfigured topic or refused credentials need a person; the letters wait for them.
                report = log.error if kind == "config" else log.warning
                report("dead_letter_publish_failed", kind=kind, error=repr(exc), retry_in_s=round(wait_s, 3))
                await self._drop_producer()
                await self._wait(wait_s)
                continue
            failures = self._crashes = 0
            if claimed < BATCH_SIZE:
                await self._wait(self.poll_interval_s)

    async def publish_once(self) -> int:
        """Claim, produce and mark one batch of each table; returns how many rows were claimed."""
        async with self.engine.begin() as connection:
            params = {"lease_s": PUBLISH_LEASE_S, "limit": BATCH_SIZE}
            rows = (await connection.execute(PUBLICATIONS["dead_letters"].claim, params)).mappings()
            letters = [msgspec.convert(dict(row), DeadLetter) for row in rows]
            rows = (await connection.execute(PUBLICATIONS["unprocessable_messages"].claim, params)).mappings()
            unprocessable = [msgspec.convert(dict(row), UnprocessableLetter) for row in rows]
        if not letters and not unprocessable:
            return 0
        outgoing, unbuildable = self._build(letters, unprocessable)
        if unbuildable:
            await self._set_aside(unbuildable)
        try:
            await self._produce(outgoing)
        except (KafkaError, KafkaConfigError) as exc:
            await self._mark(outgoing, published=False, error=repr(exc)[:500])
            raise
        await self._mark(outgoing, published=True)
        for message in outgoing:
            self.metrics.dead_letters_published.labels(message.system_code).inc()
            log.info(
                "dead_letter_published",
                system_code=message.system_code,
                topic=self.topic_for(message.system_code),
                **message.log_fields,
            )
        return len(letters) + len(unprocessable)

    def _build(
        self, letters: list[DeadLetter], unprocessable: list[UnprocessableLetter]
    ) -> tuple[list[Outgoing], list[tuple[Outgoing, str]]]:
        """The messages to produce, and the rows whose message could not be built (with why)."""
        outgoing: list[Outgoing] = []
        unbuildable: list[tuple[Outgoing, str]] = []
        rows: list[tuple[Outgoing, Callable[[], tuple[bytes | None, list[tuple[str, bytes]]]]]] = [
            (outgoing_letter(letter), partial(dead_letter_message, letter)) for letter in letters
        ] + [(outgoing_unprocessable(row), partial(unprocessable_message, row)) for row in unprocessable]
        for row, build in rows:
            try:
                value, headers = build()
            except Exception as exc:  # noqa: BLE001 - one row's data must not stop the others
                unbuildable.append((row, repr(exc)))
                continue
            outgoing.append(msgspec.structs.replace(row, value=value, headers=headers))
        return outgoing, unbuildable

    async def _set_aside(self, unbuildable: list[tuple[Outgoing, str]]) -> None:
        for message, error in unbuildable:
            self.metrics.dead_letter_publish_errors.labels("unbuildable").inc()
            log.error(
                "dead_letter_unbuildable",
                system_code=message.system_code,
                error=error,
                retry_in_s=PUBLISH_LEASE_S,
                **message.log_fields,
            )
        async with self.engine.begin() as connection:
            for message, error in unbuildable:
                statement = PUBLICATIONS[message.table].unbuildable
                await connection.execute(statement, {"ids": [message.id], "error": error[:500]})

    async def _mark(self, outgoing: list[Outgoing], *, published: bool, **params: Any) -> None:
        async with self.engine.begin() as connection:
            for table, publication in PUBLICATIONS.items():
                if ids := [m.id for m in outgoing if m.table == table]:
                    statement = publication.published if published else publication.unpublished
                    await connection.execute(statement, {"ids": ids, **params})

    async def _produce(self, outgoing: list[Outgoing]) -> None:
        if not outgoing:
            return
        producer = await self._ready_producer()
        pending: list[Any] = []
        for message in outgoing:
            topic = self.topic_for(message.system_code)
            if topic not in self._topics_ready:
                await prepare_topics(self.kafka, [topic])  # a KafkaConfigError if it is less durable than set
                self._topics_ready.add(topic)
            pending.append(await producer.send(topic, message.value, key=message.key, headers=message.headers))
        await asyncio.gather(*pending)

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = make_producer(self.kafka)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        """A failed producer is rebuilt on the next round (its connections may be stale)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _wait(self, seconds: float) -> None:
        await wait_until_set(self._wake, seconds)
        self._wake.clear()


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, KafkaConfigError):
        return "config"
    return "kafka" if isinstance(exc, KafkaError) else "database"

"""Dead letters: the ``sync.dead_letters`` rows and their publisher to ``<topic>.dlq.<system>``.

A dead-letter row is written in the same transaction that marks a record
``failed``; publishing it is a network call, so it happens afterwards, from this
table (a small outbox of its own): rows are claimed with a lease, produced, then
marked published. A crash or a broker outage leaves rows unpublished and they
are published later, so the topic gets every dead letter at least once (a
consumer dedupes by ``ce_id`` + ``x-dlq-system``, as for the main topic).

The message is the original CloudEvent again (same ``ce_*`` headers and trace
context, the event rebuilt from the stored payload) plus ``x-dlq-reason``
(``retries_exhausted: <last error>`` or ``rejected: <last error>``),
``x-dlq-system``, ``x-dlq-attempts`` and ``x-dlq-record-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, encode_event
from libs.kit.kafka import KafkaConfigError, KafkaSettings, make_producer, prepare_topics
from libs.kit.logging import get_logger
from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.sinks import event_from_payload
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

BATCH_SIZE = 100
PUBLISH_LEASE_S = 60.0
MAX_REASON_LENGTH = 500
ERROR_BACKOFF = RetryPolicy(max_retries=0, base_s=0.5, max_s=15.0)


class DeadLetter(msgspec.Struct, frozen=True):
    id: int
    record_id: int
    event_id: str
    system_code: str
    customer_id: str
    reason: str
    payload: str
    headers: dict[str, str]
    last_error: str | None
    attempts: int
    created_at: datetime


_CLAIM = text("""
    UPDATE sync.dead_letters SET publish_claimed_until = now() + make_interval(secs => :lease_s),
                                 publish_attempts = publish_attempts + 1
    WHERE id IN (
        SELECT id FROM sync.dead_letters
        WHERE published_at IS NULL AND (publish_claimed_until IS NULL OR publish_claimed_until < now())
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, record_id, event_id::text AS event_id, system_code, customer_id, reason, payload::text AS payload,
              headers, last_error, attempts, created_at
""")
_PUBLISHED = text("""
    UPDATE sync.dead_letters SET published_at = now(), publish_claimed_until = NULL, publish_error = NULL
    WHERE id = ANY(:ids)
""")
_UNPUBLISHED = text("""
    UPDATE sync.dead_letters SET publish_claimed_until = NULL, publish_error = :error WHERE id = ANY(:ids)
""")


def dead_letter_message(letter: DeadLetter) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value and headers of the dead-letter message."""
    event = event_from_payload(letter.payload)
    headers = dict(letter.headers)
    if "ce_id" not in headers:  # a record written before sync_0002 stored no headers: rebuild them
        attributes = CloudEventAttributes(
            id=letter.event_id,
            source=EVENT_SOURCE,
            type=NAME_CHANGED_TYPE,
            time=event.changed_at,
            subject=event.customer_id,
        )
        headers = kafka_headers(attributes, {})
    reason = f"{letter.reason}: {letter.last_error or ''}"[:MAX_REASON_LENGTH]
    headers |= {
        "x-dlq-reason": reason,
        "x-dlq-system": letter.system_code,
        "x-dlq-attempts": str(letter.attempts),
        "x-dlq-record-id": str(letter.record_id),
    }
    return encode_event(event), [(key, value.encode()) for key, value in headers.items()]


class DeadLetterPublisher:
    """Publishes unpublished dead letters; woken by ``notify()`` when one is written, else polls."""

    def __init__(
        self,
        engine: AsyncEngine,
        kafka: KafkaSettings,
        topic_for: Callable[[str], str],
        metrics: ConnectorMetrics,
        *,
        poll_interval_s: float,
    ) -> None:
        self._engine = engine
        self._kafka = kafka
        self._topic_for = topic_for
        self._metrics = metrics
        self._poll_s = poll_interval_s
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    async def prepare_topics(self, system_codes: Iterable[str], timeout_s: float) -> None:
        """Create the systems' dead-letter topics if missing and check them before the connector starts.

        A topic less durable than the settings (replication factor, ``min.insync.replicas``) or a broker
        that refuses our credentials or certificate is a ``KafkaConfigError``: the connector must not
        start. A broker that does not answer within ``timeout_s`` is not: each topic is then prepared
        and checked before its first dead letter is published.
        """
        topics = list(dict.fromkeys(self._topic_for(code) for code in system_codes))
        try:
            await asyncio.wait_for(prepare_topics(self._kafka, topics), timeout_s)
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
        failures = 0
        while not self._stop.is_set():
            try:
                published = await self.publish_once()
            except (KafkaError, KafkaConfigError, *DATABASE_FAULTS) as exc:
                failures += 1
                kind = _error_kind(exc)
                self._metrics.dead_letter_publish_errors.labels(kind).inc()
                wait_s = ERROR_BACKOFF.delay_before_retry(failures)
                # A misconfigured topic or refused credentials need a person; the letters wait for them.
                report = log.error if kind == "config" else log.warning
                report("dead_letter_publish_failed", kind=kind, error=repr(exc), retry_in_s=round(wait_s, 3))
                await self._drop_producer()
                await self._wait(wait_s)
                continue
            failures = 0
            if published < BATCH_SIZE:
                await self._wait(self._poll_s)

    async def publish_once(self) -> int:
        """Claim, produce and mark one batch; returns how many were published."""
        async with self._engine.begin() as connection:
            rows = (await connection.execute(_CLAIM, {"lease_s": PUBLISH_LEASE_S, "limit": BATCH_SIZE})).mappings()
            letters = [msgspec.convert(dict(row), DeadLetter) for row in rows]
        if not letters:
            return 0
        try:
            await self._produce(letters)
        except (KafkaError, KafkaConfigError) as exc:
            async with self._engine.begin() as connection:
                await connection.execute(_UNPUBLISHED, {"ids": [x.id for x in letters], "error": repr(exc)[:500]})
            raise
        async with self._engine.begin() as connection:
            await connection.execute(_PUBLISHED, {"ids": [letter.id for letter in letters]})
        for letter in letters:
            self._metrics.dead_letters_published.labels(letter.system_code).inc()
            log.info(
                "dead_letter_published",
                dead_letter_id=letter.id,
                record_id=letter.record_id,
                event_id=letter.event_id,
                system_code=letter.system_code,
                topic=self._topic_for(letter.system_code),
            )
        return len(letters)

    async def _produce(self, letters: list[DeadLetter]) -> None:
        producer = await self._ready_producer()
        pending: list[Any] = []
        for letter in letters:
            topic = self._topic_for(letter.system_code)
            if topic not in self._topics_ready:
                await prepare_topics(self._kafka, [topic])  # a KafkaConfigError if it is less durable than set
                self._topics_ready.add(topic)
            value, headers = dead_letter_message(letter)
            pending.append(await producer.send(topic, value, key=letter.customer_id.encode(), headers=headers))
        await asyncio.gather(*pending)

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = make_producer(self._kafka)
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

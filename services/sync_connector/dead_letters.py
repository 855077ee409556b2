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

Messages the consumer can never process (``sync.unprocessable_messages``, see
``unprocessable``) go out the same way, as they were read (key, value, headers)
plus ``x-dlq-reason`` (``undecodable: ...`` or ``handler_failed: ...``),
``x-dlq-system``, ``x-dlq-attempts``, ``x-dlq-source`` (``topic/partition/offset``)
and ``x-dlq-unprocessable-id``.

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
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, encode_event
from libs.kit.kafka import KafkaConfigError, KafkaSettings, make_producer, prepare_topics
from libs.kit.logging import get_logger
from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.sinks import event_from_payload
from services.sync_connector.unprocessable import decoded_headers
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


class _Publication(NamedTuple):
    """The statements of one table's publishing: both tables keep its state in the same columns."""

    claim: TextClause
    published: TextClause
    unpublished: TextClause
    # Left claimed (until the lease ends): tried again then, not in a tight loop.
    unbuildable: TextClause


def _publication(table: str, returning: str) -> _Publication:
    claim = f"""
    UPDATE sync.{table} SET publish_claimed_until = now() + make_interval(secs => :lease_s),
                            publish_attempts = publish_attempts + 1
    WHERE id IN (
        SELECT id FROM sync.{table}
        WHERE published_at IS NULL AND (publish_claimed_until IS NULL OR publish_claimed_until < now())
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING {returning}
    """  # noqa: S608 - fixed names, values are bound parameters

    def setting(assignments: str) -> TextClause:
        return text(f"UPDATE sync.{table} SET {assignments} WHERE id = ANY(:ids)")  # noqa: S608 - fixed names

    return _Publication(
        claim=text(claim),
        published=setting("published_at = now(), publish_claimed_until = NULL, publish_error = NULL"),
        unpublished=setting("publish_claimed_until = NULL, publish_error = :error"),
        unbuildable=setting("publish_error = :error"),
    )


_PUBLICATIONS = {
    "dead_letters": _publication(
        "dead_letters",
        """id, record_id, event_id::text AS event_id, system_code, customer_id, reason, payload::text AS payload,
              headers, last_error, attempts, created_at""",
    ),
    "unprocessable_messages": _publication(
        "unprocessable_messages",
        """id, system_code, topic, kafka_partition, kafka_offset, message_key, message_value,
              headers::text AS headers, event_id, customer_id, reason, error, failures""",
    ),
}


class UnprocessableLetter(msgspec.Struct, frozen=True):
    """A claimed row of ``sync.unprocessable_messages``."""

    id: int
    system_code: str
    topic: str
    kafka_partition: int
    kafka_offset: int
    message_key: bytes | None
    message_value: bytes | None
    headers: str  # JSON: [[name, base64 value], ...]
    event_id: str | None
    customer_id: str | None
    reason: str
    error: str
    failures: int


class Outgoing(msgspec.Struct, frozen=True):
    """One message for a dead-letter topic, and the row it comes from."""

    table: str  # "dead_letters" or "unprocessable_messages"
    id: int
    system_code: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    log_fields: dict[str, object]


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


def unprocessable_message(letter: UnprocessableLetter) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers of an unprocessable message's dead letter: as it was read, plus x-dlq-*."""
    ours = {
        "x-dlq-reason": f"{letter.reason}: {letter.error}"[:MAX_REASON_LENGTH],
        "x-dlq-system": letter.system_code,
        "x-dlq-attempts": str(letter.failures),
        "x-dlq-source": f"{letter.topic}/{letter.kafka_partition}/{letter.kafka_offset}",
        "x-dlq-unprocessable-id": str(letter.id),
    }
    stored = msgspec.json.decode(letter.headers, type=list[tuple[str, str]])
    received = [(name, value) for name, value in decoded_headers(stored) if name not in ours]
    return letter.message_value, received + [(name, value.encode()) for name, value in ours.items()]


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
            rows = (await connection.execute(_PUBLICATIONS["dead_letters"].claim, params)).mappings()
            letters = [msgspec.convert(dict(row), DeadLetter) for row in rows]
            rows = (await connection.execute(_PUBLICATIONS["unprocessable_messages"].claim, params)).mappings()
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
            (_outgoing_letter(letter), partial(dead_letter_message, letter)) for letter in letters
        ] + [(_outgoing_unprocessable(row), partial(unprocessable_message, row)) for row in unprocessable]
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
                statement = _PUBLICATIONS[message.table].unbuildable
                await connection.execute(statement, {"ids": [message.id], "error": error[:500]})

    async def _mark(self, outgoing: list[Outgoing], *, published: bool, **params: Any) -> None:
        async with self.engine.begin() as connection:
            for table, publication in _PUBLICATIONS.items():
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


def _outgoing_letter(letter: DeadLetter) -> Outgoing:
    fields: dict[str, object] = {
        "dead_letter_id": letter.id,
        "record_id": letter.record_id,
        "event_id": letter.event_id,
    }
    return Outgoing("dead_letters", letter.id, letter.system_code, letter.customer_id.encode(), None, [], fields)


def _outgoing_unprocessable(row: UnprocessableLetter) -> Outgoing:
    fields: dict[str, object] = {"unprocessable_id": row.id, "event_id": row.event_id, "reason": row.reason}
    return Outgoing("unprocessable_messages", row.id, row.system_code, row.message_key, None, [], fields)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, KafkaConfigError):
        return "config"
    return "kafka" if isinstance(exc, KafkaError) else "database"

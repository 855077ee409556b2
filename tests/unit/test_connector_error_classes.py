"""Error classes in the consumer: what is transient, and how a partition worker isolates the message that is not.

The worker's rules run here against handler and dead-letter doubles (the integration test
``test_connector_poison`` runs them on the real broker and database).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError, OperationalError

from libs.kit.db_faults import is_transient_database_fault, refuses_the_data, sqlstate_of
from services.sync_connector import partition_worker
from services.sync_connector.messages import KafkaMessage
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.partition_worker import PartitionWorker, UnprocessablePolicy
from services.sync_connector.unprocessable import (
    HANDLER_FAILED,
    UNDECODABLE,
    Rejected,
    UndecodableMessagesError,
    UnprocessableMessages,
    UnprocessableMetrics,
    classify_processing_error,
)
from tests.polling import eventually


def wrapped(error: Exception) -> DBAPIError:
    """How SQLAlchemy hands a statement's driver error over."""
    return DBAPIError("INSERT ...", {}, error)


@pytest.mark.parametrize(
    ("error", "kind", "transient"),
    [
        (KafkaConnectionError(), "broker", True),
        (TimeoutError(), "timeout", True),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), "database", True),
        (ConnectionRefusedError(111, "refused"), "database", True),
        (OperationalError("SELECT 1", {}, asyncpg.exceptions.AdminShutdownError("terminating")), "database", True),
        (wrapped(asyncpg.exceptions.QueryCanceledError("statement timeout")), "database", True),
        (wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")), "database", True),
        (wrapped(asyncpg.exceptions.UntranslatableCharacterError("\\u0000")), "refused_data", False),
        (wrapped(asyncpg.exceptions.StringDataRightTruncationError("too long")), "refused_data", False),
        (wrapped(asyncpg.exceptions.CheckViolationError("check")), "refused_data", False),
        (asyncpg.exceptions.DataError("invalid input for query argument $1"), "refused_data", False),
        (ValueError("a handler bug"), "unexpected", False),
        (KeyError("x"), "unexpected", False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_errors_are_classed(error: Exception, kind: str, transient: bool) -> None:
    assert classify_processing_error(error) == (kind, transient)


def test_the_sqlstate_is_found_through_the_wrappers() -> None:
    error = wrapped(asyncpg.exceptions.UntranslatableCharacterError("\\u0000"))
    assert sqlstate_of(error) == "22P05"
    assert refuses_the_data(error)
    assert not is_transient_database_fault(error)
    assert is_transient_database_fault(asyncpg.exceptions.InterfaceError("connection is closed"))
    assert not is_transient_database_fault(ValueError("not a database fault"))


@dataclass(frozen=True)
class Message:
    offset: int
    topic: str = "t"
    partition: int = 0
    key: bytes | None = b"C1"
    value: bytes | None = b"{}"
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


class Handler:
    """Fails any batch holding a poison offset; records the offsets of the batches it finished."""

    def __init__(self, poison: set[int], error: Exception, undecodable: set[int] | None = None) -> None:
        self.poison = poison
        self.error = error
        self.undecodable = undecodable or set()
        self.finished: list[int] = []
        self.calls = 0

    async def __call__(self, messages: Sequence[KafkaMessage], stop: asyncio.Event) -> None:  # noqa: ARG002
        self.calls += 1
        if rejected := [Rejected(m, "bad value") for m in messages if m.offset in self.undecodable]:
            raise UndecodableMessagesError(rejected)
        if any(m.offset in self.poison for m in messages):
            raise self.error
        self.finished.extend(m.offset for m in messages)


class Recorded(UnprocessableMessages):
    def __init__(self, registry: CollectorRegistry, failures_first: int = 0) -> None:
        super().__init__(None, UnprocessableMetrics(registry))  # type: ignore[arg-type]  # record() is ours
        self.rows: list[tuple[int, str, int]] = []
        self._failures_first = failures_first

    async def record(self, system_code: str, message: KafkaMessage, *, reason: str, error: str, failures: int) -> None:
        if self._failures_first:
            self._failures_first -= 1
            raise ConnectionRefusedError(111, "the database is down")
        assert system_code == "CRM"
        assert error
        self.rows.append((message.offset, reason, failures))


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition_worker, "PROCESSING_ERROR_BACKOFF", RetryPolicy(0, 0.001, 0.002))


async def run(
    handler: Handler, store: Recorded, registry: CollectorRegistry, count: int, policy: UnprocessablePolicy
) -> PartitionWorker:
    worker = PartitionWorker(
        TopicPartition("t", 0), handler, "CRM", ConnectorMetrics(registry), dead_letters=store, policy=policy
    )
    worker.push([Message(offset) for offset in range(count)])
    return worker


async def finished(worker: PartitionWorker, next_offset: int) -> None:
    async def done() -> bool:
        return worker.next_offset == next_offset

    await eventually(
        done,
        lambda: f"the worker to reach offset {next_offset} (it is at {worker.next_offset})",
        timeout=10,
        interval=0.005,
    )


async def test_a_poison_message_is_isolated_and_dead_lettered_alone() -> None:
    registry = CollectorRegistry()
    handler, store = Handler({6}, ValueError("a handler bug")), Recorded(registry)
    worker = await run(handler, store, registry, 10, UnprocessablePolicy(after_failures=3, streak_limit=5))
    try:
        await finished(worker, 10)
    finally:
        await worker.stop(1)
    assert store.rows == [(6, HANDLER_FAILED, 3)]
    assert sorted(handler.finished) == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert handler.finished == sorted(handler.finished)  # in order
    errors = registry.get_sample_value("message_processing_errors_total", {"system_code": "CRM", "kind": "unexpected"})
    assert errors is not None
    assert errors >= 3


async def test_transient_errors_are_retried_never_dead_lettered() -> None:
    registry = CollectorRegistry()
    handler = Handler({2}, OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")))
    store = Recorded(registry)

    async def retried_twice() -> bool:
        labels = {"system_code": "CRM", "kind": "database"}
        return (registry.get_sample_value("message_processing_errors_total", labels) or 0) >= 2

    worker = await run(handler, store, registry, 4, UnprocessablePolicy(after_failures=1, streak_limit=5))
    try:
        await eventually(retried_twice, "the database error retried twice", timeout=10)
        assert store.rows == []
        assert worker.next_offset is None  # the partition waits for the database
        handler.poison.clear()  # the database is back
        await finished(worker, 4)
    finally:
        await worker.stop(1)
    assert store.rows == []
    assert handler.finished == [0, 1, 2, 3]
    errors = registry.get_sample_value("message_processing_errors_total", {"system_code": "CRM", "kind": "database"})
    assert errors is not None
    assert errors >= 2


async def test_undecodable_messages_are_dead_lettered_at_once_and_the_rest_handled() -> None:
    registry = CollectorRegistry()
    handler = Handler(set(), ValueError("unused"), undecodable={1, 3})
    store = Recorded(registry, failures_first=2)  # the database refuses the first two writes: retried
    worker = await run(handler, store, registry, 5, UnprocessablePolicy())
    try:
        await finished(worker, 5)
    finally:
        await worker.stop(1)
    assert store.rows == [(1, UNDECODABLE, 1), (3, UNDECODABLE, 1)]
    assert handler.finished == [0, 2, 4]


async def test_a_fault_every_message_hits_is_taken_for_systemic_after_a_streak() -> None:
    registry = CollectorRegistry()
    handler = Handler(set(range(20)), RuntimeError("a bug every message hits"))
    store = Recorded(registry)
    worker = await run(handler, store, registry, 20, UnprocessablePolicy(after_failures=1, streak_limit=2))
    try:
        await asyncio.sleep(0.5)
        assert [offset for offset, _, _ in store.rows] == [0, 1]  # then it stops dead-lettering and waits
        assert worker.next_offset is None
        handler.poison.clear()  # fixed
        await finished(worker, 20)
    finally:
        await worker.stop(1)
    assert [offset for offset, _, _ in store.rows] == [0, 1]
    assert handler.finished == list(range(2, 20))


def test_an_error_raised_while_handling_refused_data_is_not_refused_data() -> None:
    def roll_back_on_a_lost_connection() -> None:
        try:
            raise wrapped(asyncpg.exceptions.UntranslatableCharacterError("\\u0000"))
        except DBAPIError:
            raise ConnectionResetError(104, "the connection dropped during the rollback")  # noqa: B904

    with pytest.raises(ConnectionResetError) as raised:
        roll_back_on_a_lost_connection()
    assert raised.value.__context__ is not None
    assert classify_processing_error(raised.value) == ("database", True)

"""The watcher: finds the causes an admin must hear of and counts them into their windows.

Every ``poll_interval_s`` (in every connector instance; one round at a time across them, by an advisory
lock) it reads:

* the connector's own tables: dead letters of the external systems (``dead-letter:<system>``), failed
  customer notifications (``notification-failed:<channel>``) and messages it can never process
  (``unprocessable:<consumer>``): the rows not yet noted, marked in the transaction that counts them;
* its own breakers: one not closed for ``breaker_open_s`` (``breaker-open:<code>``), once per outage
  and instance;
* the profile service's signals (``GET /internal/v1/admin-signals``, the notifier's token): updates
  refused for the application's status (``invalid-status``), failed unexpectedly
  (``unexpected-error``) or failed otherwise (``update-failed``), each acknowledged after it was
  counted (``POST /internal/v1/admin-signals/noted``, so a crash in between counts nothing twice:
  the occurrence key is the signal's id); and the outbox rows the relay parked (``parked-outbox``),
  a state: a row counts when it is first seen parked, and again only after it was re-driven.

The profile service's tables are its own: the connector reads them through its API only (one owner
per table; the services never import each other). No network call happens inside a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from http import HTTPStatus

import aiohttp
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.admin_signals import NOTED_PATH, SIGNALS_PATH, AdminSignal, AdminSignals
from libs.kit.logging import get_logger
from services.sync_connector.admin_notify.causes import CauseKind, cause_key
from services.sync_connector.admin_notify.metrics import AdminNotifyMetrics
from services.sync_connector.admin_notify.settings import AdminNotifySettings
from services.sync_connector.admin_notify.sources import TABLE_SOURCES, TableSource
from services.sync_connector.admin_notify.store import (
    AdminStore,
    AdminUnitOfWork,
    Counted,
    Occurrence,
    WindowPolicy,
)
from services.sync_connector.breaker import BreakerState
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.http_clients import HttpClient
from services.sync_connector.notify.settings import ProfileApiSettings
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

INVALID_STATUS = "INVALID_STATUS"
UNEXPECTED_ERROR = "UNEXPECTED_ERROR"


class SignalSourceError(Exception):
    pass


class ProfileSignalSource:
    """The profile service's admin signals, with the notifier's token, through its own HTTP client."""

    def __init__(self, settings: ProfileApiSettings, client: HttpClient) -> None:
        self._base_url = settings.url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
        self._client = client

    async def read(self, limit: int) -> AdminSignals:
        body = await self._call("GET", f"{self._base_url}{SIGNALS_PATH}?limit={limit}")
        try:
            return msgspec.json.decode(body, type=AdminSignals)
        except msgspec.DecodeError as exc:
            raise SignalSourceError(f"profile service: unreadable signals: {exc}") from exc

    async def noted(self, ids: Sequence[int]) -> None:
        await self._call("POST", f"{self._base_url}{NOTED_PATH}", json={"ids": list(ids)})

    async def _call(self, method: str, url: str, **kwargs: object) -> bytes:
        try:
            async with self._client.request(method, url, headers=self._headers, **kwargs) as response:
                status, body = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SignalSourceError(f"profile service: {type(exc).__name__}: {exc}") from exc
        if status != HTTPStatus.OK:
            raise SignalSourceError(f"profile service: HTTP {status}: {body[:200].decode(errors='replace')}")
        return body


class BreakerWatch:
    """When each breaker of this instance left ``closed`` (the runtime reports every transition)."""

    def __init__(self, instance: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.instance = instance
        self._clock = clock
        self._down_since: dict[str, datetime] = {}

    def moved(self, code: str, old: BreakerState, new: BreakerState) -> None:
        if new is BreakerState.CLOSED:
            self._down_since.pop(code, None)
        elif old is BreakerState.CLOSED:
            self._down_since[code] = self._clock.now()

    def down_longer_than(self, seconds: float) -> list[tuple[str, datetime]]:
        now = self._clock.now()
        return [(code, since) for code, since in self._down_since.items() if (now - since).total_seconds() >= seconds]


def _signal_cause(signal: AdminSignal) -> str:
    if signal.kind == "update_refused" or signal.code == INVALID_STATUS:
        return cause_key(CauseKind.INVALID_STATUS)
    if signal.code == UNEXPECTED_ERROR:
        return cause_key(CauseKind.UNEXPECTED_ERROR)
    return cause_key(CauseKind.UPDATE_FAILED)


def _signal_occurrence(signal: AdminSignal) -> Occurrence:
    subject = f"application {signal.application_id}, customer {signal.customer_id}: {signal.code}"
    return Occurrence(
        f"signal:{signal.id}",
        signal.occurred_at,
        subject,
        f"trace {signal.trace_id}" if signal.trace_id else None,
    )


@dataclass(eq=False, repr=False)
class AdminWatch:
    engine: AsyncEngine
    settings: AdminNotifySettings
    metrics: AdminNotifyMetrics
    _: KW_ONLY
    breakers: BreakerWatch
    profile: ProfileSignalSource | None
    on_opened: Callable[[], None] = lambda: None
    clock: Clock = SYSTEM_CLOCK
    _policy: WindowPolicy = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._policy = WindowPolicy(
            window_s=self.settings.window_s,
            gather_s=self.settings.gather_s,
            deadline_s=self.settings.delivery_deadline_s,
            max_examples=self.settings.max_examples,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="admin-notification-watch")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sweep()
            except Exception:  # the loop must outlive any one round; the next one tries again
                self.metrics.sweep_errors.labels("unexpected").inc()
                log.exception("admin_watch_round_failed")
            await wait_until_set(self._stop, self.settings.poll_interval_s)

    async def sweep(self) -> int:
        """One round over every source; returns how many occurrences it counted."""
        counted = 0
        complete = True
        for source in TABLE_SOURCES:
            try:
                counted += await self._sweep_table(source)
            except DATABASE_FAULTS as exc:
                complete = False
                self._failed(source.name, exc)
        try:
            counted += await self._sweep_breakers()
        except DATABASE_FAULTS as exc:
            complete = False
            self._failed("breakers", exc)
        if self.profile is not None:
            try:
                counted += await self._sweep_profile(self.profile)
            except SignalSourceError as exc:
                complete = False
                self._failed("profile", exc)
            except DATABASE_FAULTS as exc:
                complete = False
                self._failed("profile", exc)
        if complete:
            self.metrics.last_sweep.set(self.clock.now().timestamp())
        return counted

    def _failed(self, source: str, exc: BaseException) -> None:
        self.metrics.sweep_errors.labels(source).inc()
        log.warning("admin_watch_source_failed", source=source, error=repr(exc))

    async def _count(self, store: AdminStore, by_cause: dict[str, list[Occurrence]]) -> int:
        total = 0
        for cause, occurrences in by_cause.items():
            result: Counted | None = await store.count(cause, occurrences, self._policy)
            if result is None:
                continue
            total += result.new
            self.metrics.occurrences.labels(cause).inc(result.new)
            if result.opened:
                self.metrics.windows.labels(cause).inc()
                log.warning("admin_notification_window_opened", cause=cause, occurrences=result.new)
        return total

    async def _sweep_table(self, source: TableSource) -> int:
        counted = 0
        while not self._stop.is_set():
            async with AdminUnitOfWork(self.engine, self.clock) as uow:
                await uow.admin.lock()
                rows = await source.take(uow.connection, self.settings.batch_size)
                by_cause: dict[str, list[Occurrence]] = defaultdict(list)
                for row in rows:
                    by_cause[cause_key(source.kind, row.code)].append(row.occurrence)
                counted += await self._count(uow.admin, by_cause)
                if rows:
                    await source.note(uow.connection, [row.id for row in rows])
                await uow.commit()
            if counted:
                self.on_opened()
            if len(rows) < self.settings.batch_size:
                break
        return counted

    async def _sweep_breakers(self) -> int:
        down = self.breakers.down_longer_than(self.settings.breaker_open_s)
        if not down:
            return 0
        instance = self.breakers.instance
        by_cause = {
            cause_key(CauseKind.BREAKER_OPEN, code): [
                Occurrence(
                    f"{instance}:{since.isoformat()}",
                    since,
                    f"{code}: not closed since {since.isoformat(timespec='seconds')} (connector instance {instance})",
                )
            ]
            for code, since in down
        }
        async with AdminUnitOfWork(self.engine, self.clock) as uow:
            await uow.admin.lock()
            counted = await self._count(uow.admin, by_cause)
            await uow.commit()
        if counted:
            self.on_opened()
        return counted

    async def _sweep_profile(self, profile: ProfileSignalSource) -> int:
        counted = 0
        parked_done = False
        while not self._stop.is_set():
            read = await profile.read(self.settings.batch_size)  # outside any transaction
            by_cause: dict[str, list[Occurrence]] = defaultdict(list)
            for signal in read.signals:
                by_cause[_signal_cause(signal)].append(_signal_occurrence(signal))
            parked = cause_key(CauseKind.PARKED_OUTBOX)
            if not parked_done:
                by_cause[parked] = [
                    Occurrence(
                        f"outbox:{row.id}",
                        self.clock.now(),
                        f"outbox row {row.id}, customer {row.aggregate_id}, {row.attempts} attempts",
                        row.last_error,
                    )
                    for row in read.parked_outbox.rows
                ]
            async with AdminUnitOfWork(self.engine, self.clock) as uow:
                await uow.admin.lock()
                counted += await self._count(uow.admin, by_cause)
                if not parked_done and read.parked_outbox.complete:
                    # Every parked row is listed: those no longer parked (re-driven) are resolved.
                    await uow.admin.resolve_absent(parked, [o.key for o in by_cause[parked]])
                await uow.commit()
            parked_done = True
            if read.signals:
                await profile.noted([signal.id for signal in read.signals])  # after the commit
            if counted:
                self.on_opened()
            if len(read.signals) < self.settings.batch_size:
                break
        return counted

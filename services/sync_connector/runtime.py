"""Composition root: builds every collaborator from settings, starts and stops them together."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from types import TracebackType
from typing import Any, Self

from opentelemetry import trace
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db import make_engine
from libs.kit.kafka import KafkaConfigError
from libs.kit.logging import configure_logging, get_logger
from libs.kit.ops_server import broker_check
from libs.kit.telemetry import configure_tracing
from libs.kit.tokens import TokenVerifier
from services.sync_connector.admin import SyncAdmin
from services.sync_connector.admin_notify.metrics import AdminNotifyMetrics
from services.sync_connector.admin_notify.watch import AdminWatch, BreakerWatch
from services.sync_connector.admin_notify.wiring import build_admin_notifications
from services.sync_connector.breaker import BreakerState, CircuitBreaker
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.consumer import SystemConsumer
from services.sync_connector.dead_letters import DeadLetterPublisher
from services.sync_connector.delivery import SyncDelivery
from services.sync_connector.http_api import create_api
from services.sync_connector.http_clients import CLIENT_CODES, HttpClientMetrics, HttpClients
from services.sync_connector.http_server import ApiServer
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.notify.admin import NotificationAdmin
from services.sync_connector.notify.metrics import NotificationMetrics
from services.sync_connector.notify.settings import Channel
from services.sync_connector.notify.wiring import NOTIFY_CODE, build_notifications
from services.sync_connector.outcome import RetryPolicy, equal_jitter
from services.sync_connector.scheduler import RetryScheduler
from services.sync_connector.settings import ConnectorSettings
from services.sync_connector.sinks import EXTERNAL_SYSTEMS, HttpSink
from services.sync_connector.status_gauges import StatusGauges, StatusRefresher
from services.sync_connector.unprocessable import UnprocessableMessages, UnprocessableMetrics
from services.sync_connector.wiring import Wiring

log = get_logger(__name__)


class ConnectorRuntime:
    """Per external system a consumer group, a retry scheduler and a circuit breaker; one dead-letter
    publisher and the HTTP API; all in this event loop.

    ``serve`` runs one; tests run one in-process (``async with ConnectorRuntime(settings) as runtime``).
    ``settings.http_port = 0`` binds a free port, see ``http_url``.
    """

    def __init__(
        self,
        settings: ConnectorSettings,
        registry: CollectorRegistry | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.clock = clock  # deadlines, backoff, leases and breakers (tests move a clock of their own)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ConnectorMetrics(self.registry)
        self.notify_metrics = NotificationMetrics(self.registry)
        self.status_gauges = StatusGauges(self.registry)
        self.status_refresher: StatusRefresher | None = None
        self.admin_metrics = AdminNotifyMetrics(self.registry)
        # When each breaker of this instance left closed: a long outage is a cause for the admins.
        self.breaker_watch = BreakerWatch(f"{socket.gethostname()}/{os.getpid()}", clock)
        self.admin_watch: AdminWatch | None = None
        self._tracer_provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = self._tracer_provider.get_tracer("services.sync_connector")
        self.consumers: dict[str, SystemConsumer] = {}
        self.schedulers: dict[str, RetryScheduler[Any]] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        self.dead_letters: DeadLetterPublisher | None = None
        self.http_url = ""
        self._engine: AsyncEngine | None = None
        self._http: HttpClients | None = None
        self._api: ApiServer | None = None

    @property
    def consumers_started(self) -> bool:
        return bool(self.consumers) and all(consumer.started for consumer in self.consumers.values())

    @property
    def partitions_assigned(self) -> bool:
        """Every system's group has joined and owns partitions (tests wait for this before producing)."""
        return bool(self.consumers) and all(consumer.assigned for consumer in self.consumers.values())

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # whatever did start must not leak
            raise

    async def _start(self) -> None:
        settings = self.settings
        self._engine = engine = make_engine(settings.database)
        # One HTTP client (its own pool and timeouts) per system and per notification dependency.
        self._http = http = HttpClients(
            {code: settings.http_client(code) for code in CLIENT_CODES},
            metrics=HttpClientMetrics(self.registry),
            tracer_provider=self._tracer_provider,
        )
        policy = RetryPolicy(settings.max_retry_count, settings.backoff_base_s, settings.backoff_max_s, equal_jitter)
        self.dead_letters = DeadLetterPublisher(
            engine, settings.kafka, settings.dlq_topic, self.metrics, poll_interval_s=settings.dlq_poll_interval_s
        )
        # A dead-letter topic with fewer replicas than the settings ask refuses the start (KafkaConfigError).
        # The notifications' consumer dead-letters the messages it can never process to its own topic.
        dlq_codes = [*settings.systems, *([NOTIFY_CODE] if settings.notify.enabled else [])]
        await self.dead_letters.prepare_topics(dlq_codes, timeout_s=settings.kafka.request_timeout_ms / 1000)
        # Messages a consumer can never process are dead-lettered alone; the publisher sends them on.
        unprocessable = UnprocessableMessages(
            engine, UnprocessableMetrics(self.registry), on_recorded=self.dead_letters.notify
        )
        wiring = Wiring(settings, engine, http, self.metrics, self._tracer, self._breaker_moved, self.clock)
        for system in (s for s in EXTERNAL_SYSTEMS if s.code in settings.systems):
            breaker = self.breakers[system.code] = wiring.breaker(
                system.code,
                failure_threshold=settings.breaker_failure_threshold,
                cooldown_s=settings.breaker_cooldown_s,
                max_cooldown_s=settings.backoff_max_s,
                call_timeout_s=settings.http_client(system.code).call_timeout_s,
            )
            delivery = SyncDelivery(
                engine,
                HttpSink(system, settings.endpoint(system.code), http.get(system.code)),
                breaker,
                policy,
                self.metrics,
                lease_s=settings.claim_lease_s,
                recheck_s=settings.retry_poll_interval_s,
                deadline_s=settings.deadline_s(system.code),
                on_dead_letter=self.dead_letters.notify,
                max_wave=settings.delivery_wave_size,
                clock=self.clock,
            )
            self.consumers[system.code] = wiring.consumer_group(system.code, delivery, unprocessable)
            self.schedulers[system.code] = wiring.scheduler(
                delivery,
                breaker,
                poll_interval_s=settings.retry_poll_interval_s,
                concurrency=settings.retry_concurrency,
            )
        if settings.notify.enabled:  # its consumer group, schedulers and breakers run with the systems' ones
            notifications = build_notifications(wiring, metrics=self.notify_metrics, unprocessable=unprocessable)
            self.consumers[NOTIFY_CODE] = notifications.consumer
            self.schedulers.update(notifications.schedulers)
            self.breakers.update(notifications.breakers)
        if settings.admin_notify.enabled:  # the admins' mail is one more channel of the delivery engine
            admin_parts = build_admin_notifications(wiring, metrics=self.admin_metrics, breakers=self.breaker_watch)
            self.schedulers[admin_parts.breaker.system_code] = admin_parts.scheduler
            self.breakers[admin_parts.breaker.system_code] = admin_parts.breaker
            self.admin_watch = admin_parts.watch
        for consumer in self.consumers.values():
            consumer.start()
        for scheduler in self.schedulers.values():
            scheduler.start()
        self.dead_letters.start()
        if self.admin_watch is not None:
            self.admin_watch.start()
        self.status_refresher = StatusRefresher(
            engine,
            self.status_gauges,
            system_codes=settings.systems,
            near_window_s=settings.near_deadline_window_s,
            interval_s=settings.status_refresh_interval_s,
        )
        self.status_refresher.start()
        admin = SyncAdmin(
            engine,
            retry_budget=settings.max_retry_count,
            bulk_limit=settings.admin_bulk_retry_limit,
            metrics=self.metrics,
        )
        api = create_api(
            engine,
            self.registry,
            lambda: self.consumers_started,
            admin,
            broker_check(settings.kafka.bootstrap_servers),
            verifier=TokenVerifier(settings.auth),
            notification_admin=NotificationAdmin(
                engine,
                attempt_budget=settings.notify.max_attempts,
                bulk_limit=settings.admin_bulk_retry_limit,
                metrics=self.notify_metrics,
                on_reset=self._wake_notifications,
            ),
        )
        self._api = ApiServer(api, settings.http_host, settings.http_port)
        await self._api.start()
        self.http_url = self._api.url
        log.info("connector_started", topic=settings.topic, http_url=self.http_url, systems=list(self.consumers))

    def _wake_notifications(self, channel: Channel) -> None:
        if (scheduler := self.schedulers.get(channel.code)) is not None:
            scheduler.wake()

    def _breaker_moved(self, system_code: str, old: BreakerState, new: BreakerState, why: str) -> None:
        self.metrics.breaker_state.labels(system_code).set(new)
        self.breaker_watch.moved(system_code, old, new)
        self.metrics.breaker_transitions.labels(system_code, new.name.lower()).inc()
        level = log.info if new is BreakerState.CLOSED else log.warning
        level(
            "circuit_breaker_transition",
            system_code=system_code,
            from_state=old.name.lower(),
            to_state=new.name.lower(),
            reason=why,
        )

    async def stop(self) -> None:
        """Consumers and schedulers first (finish in-flight calls, record, commit), then the dead-letter
        publisher, the API, the HTTP pool and the database pool."""
        await asyncio.gather(
            *(consumer.stop() for consumer in self.consumers.values()),
            *(scheduler.stop() for scheduler in self.schedulers.values()),
        )
        for part in (self.admin_watch, self.dead_letters, self.status_refresher, self._api):
            if part is not None:  # None: the start failed before it
                await part.stop()
        if self._http is not None:
            await self._http.close()
        if self._engine is not None:
            await self._engine.dispose()
        log.info("connector_stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def run_connector(settings: ConnectorSettings) -> None:
    """The ``serve`` process: run until SIGTERM/SIGINT, then shut down gracefully."""
    configure_logging(settings.service_name, settings.log_level)
    provider = configure_tracing(settings.service_name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = ConnectorRuntime(settings, tracer_provider=provider)
    try:
        await runtime.start()
    except KafkaConfigError as exc:
        log.error("connector_refused_to_start", error=str(exc))  # noqa: TRY400 - the message says it all
        provider.shutdown()
        raise
    try:
        await stop.wait()
        log.info("connector_stopping")
    finally:
        await runtime.stop()
        provider.shutdown()

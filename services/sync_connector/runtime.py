"""Composition root: builds every collaborator from settings, starts and stops them together."""

from __future__ import annotations

import asyncio
import signal
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web
from opentelemetry import trace
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db import make_engine
from libs.kit.logging import configure_logging, get_logger
from libs.kit.telemetry import configure_tracing
from services.sync_connector.consumer import SystemConsumer
from services.sync_connector.delivery import SyncDelivery, SystemMessageHandler
from services.sync_connector.http_api import create_api
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.settings import ConnectorSettings
from services.sync_connector.sinks import EXTERNAL_SYSTEMS, HttpSink, make_http_session

log = get_logger(__name__)


class ConnectorRuntime:
    """The consumers of all external systems plus the HTTP API, in this event loop.

    ``serve`` runs one; tests run one in-process (``async with ConnectorRuntime(settings) as runtime``).
    ``settings.http_port = 0`` binds a free port, see ``http_url``.
    """

    def __init__(
        self,
        settings: ConnectorSettings,
        registry: CollectorRegistry | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ConnectorMetrics(self.registry)
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("services.sync_connector")
        self.consumers: dict[str, SystemConsumer] = {}
        self.http_url = ""
        self._engine: AsyncEngine | None = None
        self._session: aiohttp.ClientSession | None = None
        self._api: web.AppRunner | None = None

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
        self._session = make_http_session(settings.http_timeout_s)
        policy = RetryPolicy(settings.max_retry_count, settings.backoff_base_s, settings.backoff_max_s)
        for system in EXTERNAL_SYSTEMS:
            sink = HttpSink(system, settings.endpoint(system.code), self._session, self._tracer)
            group_id = settings.group_id(system.code)
            handler = SystemMessageHandler(
                SyncDelivery(engine, sink, policy, self.metrics), system.code, group_id, self._tracer, self.metrics
            )
            consumer = SystemConsumer(
                system.code,
                kafka=settings.kafka,
                topic=settings.topic,
                group_id=group_id,
                handler=handler,
                metrics=self.metrics,
                grace_s=settings.shutdown_grace_s,
            )
            self.consumers[system.code] = consumer
            consumer.start()
        self._api = web.AppRunner(
            create_api(engine, self.registry, lambda: self.consumers_started), access_log=None, handle_signals=False
        )
        await self._api.setup()
        await web.TCPSite(self._api, settings.http_host, settings.http_port).start()
        host, port = self._api.addresses[0][:2]
        self.http_url = f"http://{host}:{port}"
        log.info("connector_started", topic=settings.topic, http_url=self.http_url, systems=list(self.consumers))

    async def stop(self) -> None:
        """Consumers first (finish in-flight, commit), then the API, the HTTP pool and the database pool."""
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers.values()))
        if self._api is not None:
            await self._api.cleanup()
        if self._session is not None:
            await self._session.close()
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
    await runtime.start()
    try:
        await stop.wait()
        log.info("connector_stopping")
    finally:
        await runtime.stop()
        provider.shutdown()

"""One HTTP client per external system (and per HTTP dependency of the notifications).

Each client has its own aiohttp session and connection pool, so a slow or
hanging system holds only its own connections: systems behind one gateway host
never starve each other (invariant 5). At most ``pool_size`` calls of a system
are in flight; more callers wait in line for a connection, and that wait is
never a failure: the connect timeout and the read timeout start once a
connection is held, and a call's whole time on its connection is bounded by
their sum. ``http_client_waiting`` shows how many calls wait, per client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
from opentelemetry import trace

from libs.kit.metrics import MetricSet, gauge
from libs.kit.telemetry import records_spans
from services.sync_connector.http_spans import client_span_trace_config

# The clients: the external systems, and the notifications' SMS gateway and contact lookup (profile service).
SYSTEM_CLIENTS = ("CRM", "CMS", "CSS")
SMS_CLIENT = "SMS"
PROFILE_CLIENT = "PROFILE"
CLIENT_CODES = (*SYSTEM_CLIENTS, SMS_CLIENT, PROFILE_CLIENT)


class HttpClientSettings(msgspec.Struct, frozen=True):
    """One client's pool and timeouts (resolved: see ``ConnectorSettings.http_client``)."""

    # Connections (so calls in flight) at most; more callers wait in line for one.
    pool_size: int
    # Opening a connection (TCP, TLS), counted once the caller holds a place in the pool.
    connect_timeout_s: float
    # From the request sent to the answer, and between reads of it.
    read_timeout_s: float

    def __post_init__(self) -> None:
        if self.pool_size < 1 or self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            msg = "an HTTP client's pool_size must be at least 1 and its timeouts positive"
            raise ValueError(msg)

    @property
    def call_timeout_s(self) -> float:
        """The longest a call holds its connection: connect plus read."""
        return self.connect_timeout_s + self.read_timeout_s


class HttpClientOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What ``CONNECTOR_HTTP_CLIENTS`` may set for one client; a field left out keeps the default."""

    pool_size: int | None = None
    connect_timeout_s: float | None = None
    read_timeout_s: float | None = None


class HttpClientMetrics(MetricSet):
    """Per client: calls waiting for a connection, and calls holding one."""

    waiting = gauge(
        "http_client_waiting",
        "Calls waiting for a connection of their client's pool (queueing, not failing)",
        ["client"],
    )
    in_flight = gauge(
        "http_client_in_flight", "Calls holding a connection of their client's pool (at most its pool size)", ["client"]
    )


class HttpClient:
    """A pooled HTTP client of one system: ``async with client.request("POST", url, ...) as response``.

    Raises ``TimeoutError`` when connecting or reading outlasts its timeout (once a connection is held)
    and ``aiohttp.ClientError`` when the connection is refused or dropped; any HTTP answer is returned.
    """

    def __init__(
        self,
        name: str,
        settings: HttpClientSettings,
        *,
        metrics: HttpClientMetrics | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._waiting = metrics.waiting.labels(name) if metrics is not None else None
        self._in_flight = metrics.in_flight.labels(name) if metrics is not None else None
        self._session = _make_session(settings, tracer_provider)

    @asynccontextmanager
    async def request(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        async with (
            self._connection_slot(),
            asyncio.timeout(self.settings.call_timeout_s),
            self._session.request(method, url, **kwargs) as response,
        ):
            yield response

    @asynccontextmanager
    async def _connection_slot(self) -> AsyncIterator[None]:
        """A place in the pool: waits in line, without a time limit (queueing is not the system failing)."""
        if self._waiting is not None:
            self._waiting.inc()
        try:
            await self._slots.acquire()
        finally:
            if self._waiting is not None:
                self._waiting.dec()
        if self._in_flight is not None:
            self._in_flight.inc()
        try:
            yield
        finally:
            if self._in_flight is not None:
                self._in_flight.dec()
            self._slots.release()

    async def close(self) -> None:
        await self._session.close()


def _make_session(settings: HttpClientSettings, tracer_provider: trace.TracerProvider | None) -> aiohttp.ClientSession:
    """The client's own session and pool.

    The semaphore in front keeps the calls at most ``pool_size``, so the connector (same limit) always
    has a connection for a caller that got past it: its timeouts never count waiting. When spans are
    recorded, ``client_span_trace_config`` makes the CLIENT span of every call (stable HTTP semantic
    conventions) and injects its ``traceparent``; otherwise it is left out (about a tenth
    of the connector's CPU, for spans nobody reads) and callers inject the current span's themselves.
    """
    provider = tracer_provider or trace.get_tracer_provider()
    tracing = [client_span_trace_config(provider)] if records_spans(provider) else []
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=None,  # would include waiting for a pooled connection
            sock_connect=settings.connect_timeout_s,
            sock_read=settings.read_timeout_s,
        ),
        connector=aiohttp.TCPConnector(limit=settings.pool_size, limit_per_host=0),
        trace_configs=tracing,
    )


class HttpClients:
    """The connector's clients by code, built at start-up and closed together."""

    def __init__(
        self,
        settings: dict[str, HttpClientSettings],
        *,
        metrics: HttpClientMetrics | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._tracer_provider = tracer_provider
        self._clients: dict[str, HttpClient] = {}

    def get(self, code: str) -> HttpClient:
        """The client of ``code`` (made on first use, in the running event loop)."""
        if (client := self._clients.get(code)) is None:
            client = self._clients[code] = HttpClient(
                code, self._settings[code], metrics=self._metrics, tracer_provider=self._tracer_provider
            )
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.close() for client in clients))

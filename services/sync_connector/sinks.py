"""One sink per external system: a small Protocol and its aiohttp implementation.

The three systems differ only by code, name and path, so one HTTP class serves
all of them; a system with a different protocol would get its own ``Sink``.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Protocol

import aiohttp
import msgspec
from opentelemetry import propagate, trace
from opentelemetry.instrumentation._semconv import _StabilityMode
from opentelemetry.instrumentation.aiohttp_client import create_trace_config

from contracts.events import CustomerNameChanged
from libs.kit.telemetry import records_spans
from services.sync_connector.settings import SystemEndpoint
from services.sync_connector.signing import SIGNATURE_HEADER, sign_body


class ExternalSystem(msgspec.Struct, frozen=True):
    code: str
    name: str
    path: str


CRM = ExternalSystem("CRM", "计费系统", "/api/customer/update")
CMS = ExternalSystem("CMS", "营销系统", "/api/profile/sync")
CSS = ExternalSystem("CSS", "客服系统", "/api/customer/profile")
EXTERNAL_SYSTEMS: tuple[ExternalSystem, ...] = (CRM, CMS, CSS)


class SyncPayload(msgspec.Struct, frozen=True, rename="camel"):
    """The JSON body every external system receives (also stored as ``sync_data``)."""

    event_id: str
    customer_id: str
    application_id: str
    customer_name: str
    old_name: str
    profile_version: int
    reason: str
    changed_at: datetime


def encode_payload(event_id: str, event: CustomerNameChanged) -> bytes:
    return msgspec.json.encode(
        SyncPayload(
            event_id=event_id,
            customer_id=event.customer_id,
            application_id=event.application_id,
            customer_name=event.new_name,
            old_name=event.old_name,
            profile_version=event.profile_version,
            reason=event.reason,
            changed_at=event.changed_at,
        )
    )


def event_from_payload(sync_data: str | bytes) -> CustomerNameChanged:
    """The event a stored payload was made from (the dead-letter topic carries the event again)."""
    payload = msgspec.json.decode(sync_data, type=SyncPayload)
    return CustomerNameChanged(
        customer_id=payload.customer_id,
        application_id=payload.application_id,
        old_name=payload.old_name,
        new_name=payload.customer_name,
        profile_version=payload.profile_version,
        reason=payload.reason,
        changed_at=payload.changed_at,
    )


class SinkResponse(msgspec.Struct, frozen=True):
    status: int
    body: bytes


class SinkUnavailableError(Exception):
    """The system gave no HTTP answer; whether the call landed is unknown."""

    kind: ClassVar[str] = "unavailable"


class SinkTimeoutError(SinkUnavailableError):
    kind = "timeout"


class SinkConnectionError(SinkUnavailableError):
    kind = "connection_error"


class Sink(Protocol):
    @property
    def system(self) -> ExternalSystem: ...

    async def send(self, idempotency_key: str, body: bytes) -> SinkResponse:
        """POST the body; an HTTP answer of any status is returned, no answer raises SinkUnavailableError."""
        ...


def make_http_session(timeout_s: float, tracer_provider: trace.TracerProvider | None = None) -> aiohttp.ClientSession:
    """The one pooled session all sinks share.

    When spans are recorded, the maintained aiohttp-client instrumentation makes the CLIENT
    span of every call (stable HTTP semantic conventions) and injects its ``traceparent``.
    Otherwise it is left out (about a tenth of the connector's CPU, for spans nobody reads)
    and the sink injects the current span's ``traceparent`` itself.
    """
    provider = tracer_provider or trace.get_tracer_provider()
    tracing = (
        [create_trace_config(tracer_provider=provider, sem_conv_opt_in_mode=_StabilityMode.HTTP)]
        if records_spans(provider)
        else []
    )
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        connector=aiohttp.TCPConnector(limit=100, limit_per_host=30),
        trace_configs=tracing,
    )


class HttpSink:
    def __init__(self, system: ExternalSystem, endpoint: SystemEndpoint, session: aiohttp.ClientSession) -> None:
        self._system = system
        self._endpoint = endpoint
        self._url = endpoint.base_url.rstrip("/") + system.path
        self._session = session

    @property
    def system(self) -> ExternalSystem:
        return self._system

    async def send(self, idempotency_key: str, body: bytes) -> SinkResponse:
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        propagate.inject(headers)  # the instrumentation, when present, replaces it with its CLIENT span's
        if self._endpoint.secret:
            headers[SIGNATURE_HEADER] = sign_body(self._endpoint.secret, body)
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                return SinkResponse(response.status, await response.read())
        except TimeoutError as exc:
            msg = f"no answer from {self._url} within the timeout"
            raise SinkTimeoutError(msg) from exc
        except aiohttp.ClientError as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise SinkConnectionError(msg) from exc

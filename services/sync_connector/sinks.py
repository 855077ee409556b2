"""One sink per external system: a small Protocol and its aiohttp implementation.

The three systems differ only by code, name and path, so one HTTP class serves
all of them; a system with a different protocol would get its own ``Sink``.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import aiohttp
import msgspec
from opentelemetry import propagate

from contracts.events import CustomerNameChanged
from contracts.external_systems import IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, SYSTEM_PATHS, ExternalSyncRequest
from services.sync_connector.http_clients import HttpClient
from services.sync_connector.settings import SystemEndpoint
from services.sync_connector.signing import sign_body


class ExternalSystem(msgspec.Struct, frozen=True):
    code: str
    name: str
    path: str


CRM = ExternalSystem("CRM", "计费系统", SYSTEM_PATHS["CRM"])
CMS = ExternalSystem("CMS", "营销系统", SYSTEM_PATHS["CMS"])
CSS = ExternalSystem("CSS", "客服系统", SYSTEM_PATHS["CSS"])
EXTERNAL_SYSTEMS: tuple[ExternalSystem, ...] = (CRM, CMS, CSS)


# The request names the event's ``new_name`` ``customer_name`` and adds the event id; every other field is the
# event's own, by the same name.
def encode_payload(event_id: str, event: CustomerNameChanged) -> bytes:
    """The body every external system receives (the contract's request), also stored as ``sync_data``."""
    fields = msgspec.structs.asdict(event)
    fields["customer_name"] = fields.pop("new_name")
    return msgspec.json.encode(ExternalSyncRequest(event_id=event_id, **fields))


def event_from_payload(sync_data: str | bytes) -> CustomerNameChanged:
    """The event a stored payload was made from (the dead-letter topic carries the event again)."""
    fields = msgspec.structs.asdict(msgspec.json.decode(sync_data, type=ExternalSyncRequest))
    del fields["event_id"]
    fields["new_name"] = fields.pop("customer_name")
    return CustomerNameChanged(**fields)


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


class HttpSink:
    """POSTs through the system's own ``HttpClient``: a call waiting for a connection of the system's
    pool is not failing; only connecting or reading beyond the timeouts (once a connection is held) is."""

    def __init__(self, system: ExternalSystem, endpoint: SystemEndpoint, client: HttpClient) -> None:
        self._system = system
        self._endpoint = endpoint
        self._url = endpoint.base_url.rstrip("/") + system.path
        self._client = client

    @property
    def system(self) -> ExternalSystem:
        return self._system

    async def send(self, idempotency_key: str, body: bytes) -> SinkResponse:
        headers = {"Content-Type": "application/json", IDEMPOTENCY_KEY_HEADER: idempotency_key}
        propagate.inject(headers)  # the instrumentation, when present, replaces it with its CLIENT span's
        if self._endpoint.secret:
            headers[SIGNATURE_HEADER] = sign_body(self._endpoint.secret, body)
        try:
            async with self._client.request("POST", self._url, data=body, headers=headers) as response:
                return SinkResponse(response.status, await response.read())
        except TimeoutError as exc:
            timeouts = self._client.settings
            msg = (
                f"no answer from {self._url} within the timeouts "
                f"(connect {timeouts.connect_timeout_s:g} s, read {timeouts.read_timeout_s:g} s)"
            )
            raise SinkTimeoutError(msg) from exc
        except aiohttp.ClientError as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise SinkConnectionError(msg) from exc

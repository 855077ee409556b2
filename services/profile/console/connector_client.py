"""An HTTP client of the sync-connector's admin API (the services never import each other).

The console calls it on behalf of a person: the person's bearer token is forwarded, so the
connector checks their role and audits them as the token's subject; the service token from
the settings is used only when there is no person's token. Requests and answers are the connector's
contract (``contracts.connector_admin``, one declaration for both sides; a test checks this client
against the connector's OpenAPI document); its problem+json errors become typed AppErrors with
the connector's own words, and a connector that does not answer is a retryable 503.
"""

from __future__ import annotations

import time
from typing import TypeVar, cast
from urllib.parse import quote

import aiohttp
import msgspec
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from prometheus_client import CollectorRegistry, Counter, Histogram

from contracts.connector_admin import (
    AdminNotification,
    AdminNotificationPage,
    BulkRetryRequest,
    BulkRetryResult,
    CustomerSyncStatus,
    DeliveryStats,
    PipelineStatus,
    SyncJourney,
    SyncRecord,
    SyncRecordDetail,
    SyncRecordFilter,
    SyncRecordPage,
    SystemCode,
)
from libs.kit.errors import AppError, ConflictError, NotFoundError, ValidationError
from libs.kit.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")
USER_AGENT = "profile-service-console/1"
# The connector's answer when it has no record of a customer (any other 404 is an error: a missing route).
JOURNEY_NOT_FOUND = "SYNC_JOURNEY_NOT_FOUND"


class ConnectorClientSettings(msgspec.Struct, frozen=True):
    """``PROFILE_CONNECTOR_*``."""

    # The sync-connector's admin API, which the console reads and acts through.
    url: str = "http://127.0.0.1:8001"
    # Bearer token of the profile service's own identity, for calls made without a person's token.
    token: str = ""
    # One call's limit; past it the console shows the connector as unavailable.
    timeout_s: float = 5.0

    def __repr__(self) -> str:  # never print the token
        return f"ConnectorClientSettings(url={self.url!r}, token={'set' if self.token else 'unset'})"


class ConnectorUnavailable(
    AppError, code="CONNECTOR_UNAVAILABLE", status=503, title="The sync-connector does not answer", retryable=True
): ...


class ConnectorNotFound(NotFoundError, code="CONNECTOR_NOT_FOUND", title="Not found at the sync-connector"): ...


class ConnectorConflict(ConflictError, code="CONNECTOR_CONFLICT", title="The sync-connector refused the change"): ...


class ConnectorRejected(
    ValidationError, code="CONNECTOR_REJECTED", title="The sync-connector rejected the request"
): ...


class ConnectorUnauthenticated(
    AppError, code="CONNECTOR_UNAUTHENTICATED", status=401, title="The sync-connector did not accept the credentials"
): ...


class ConnectorForbidden(
    AppError, code="CONNECTOR_FORBIDDEN", status=403, title="The sync-connector does not allow this for your role"
): ...


_ERRORS_BY_STATUS: dict[int, type[AppError]] = {
    401: ConnectorUnauthenticated,
    403: ConnectorForbidden,
    404: ConnectorNotFound,
    409: ConnectorConflict,
    422: ConnectorRejected,
}


class Caller(msgspec.Struct, frozen=True):
    """On whose behalf a call is made: their token (the connector verifies it) and browser."""

    token: str | None = None
    user_agent: str | None = None


class _Problem(msgspec.Struct):
    detail: str = ""
    code: str = ""


class ConnectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "connector_client_calls",
            "Calls of the profile service to the sync-connector's admin API, by operation and outcome",
            ["operation", "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "connector_client_call_seconds", "Duration of one call to the sync-connector", ["operation"],
            registry=registry,
        )  # fmt: skip


def make_connector_session(
    settings: ConnectorClientSettings, tracer_provider: trace.TracerProvider | None = None
) -> aiohttp.ClientSession:
    """The pooled session; the aiohttp-client instrumentation makes a CLIENT span and sends ``traceparent``."""
    return aiohttp.ClientSession(
        base_url=settings.url.rstrip("/") + "/",
        timeout=aiohttp.ClientTimeout(total=settings.timeout_s),
        connector=aiohttp.TCPConnector(limit=20),
        trace_configs=[create_trace_config(tracer_provider=tracer_provider)],
    )


class ConnectorClient:
    def __init__(
        self, session: aiohttp.ClientSession, settings: ConnectorClientSettings, metrics: ConnectorMetrics
    ) -> None:
        self._session = session
        self._settings = settings
        self._metrics = metrics

    @property
    def base_url(self) -> str:
        return self._settings.url

    async def pipeline_status(self, caller: Caller) -> PipelineStatus:
        return await self._call("pipeline_status", "GET", "v1/pipeline-status", caller, PipelineStatus)

    async def list_records(
        self, where: SyncRecordFilter, caller: Caller, *, cursor: str | None = None, limit: int = 50
    ) -> SyncRecordPage:
        query = {
            "customerId": where.customer_id,
            "systemCode": where.system_code,
            "status": where.status,
            "cursor": cursor,
            "limit": str(limit),
        }
        params = {k: v for k, v in query.items() if v}
        return await self._call("list_records", "GET", "v1/sync-records", caller, SyncRecordPage, params=params)

    async def record(self, record_id: int, caller: Caller) -> SyncRecordDetail:
        return await self._call("record", "GET", f"v1/sync-records/{record_id}", caller, SyncRecordDetail)

    async def sync_status(self, customer_id: str, caller: Caller) -> CustomerSyncStatus | None:
        """The latest record per system, or None when the connector has no record of the customer."""
        try:
            return await self._call(
                "sync_status", "GET", f"v1/sync-status/{_path(customer_id)}", caller, CustomerSyncStatus
            )
        except ConnectorNotFound:
            return None

    async def journey(self, customer_id: str, caller: Caller, *, limit: int = 20) -> SyncJourney | None:
        """The customer's newest ``limit`` events with every attempt, or None when the connector has none."""
        path = f"v1/sync-journeys/{_path(customer_id)}"
        try:
            return await self._call("journey", "GET", path, caller, SyncJourney, params={"limit": str(limit)})
        except ConnectorNotFound as exc:
            if exc.extensions.get("connector_code") == JOURNEY_NOT_FOUND:
                return None
            raise

    async def delivery_stats(self, caller: Caller, *, window_s: int = 3600, buckets: int = 30) -> DeliveryStats:
        params = {"windowS": str(window_s), "buckets": str(buckets)}
        return await self._call("delivery_stats", "GET", "v1/delivery-stats", caller, DeliveryStats, params=params)

    async def admin_notifications(
        self,
        caller: Caller,
        *,
        cause: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> AdminNotificationPage:
        """The admin notifications (one per cause and window), newest first."""
        query = {"cause": cause, "status": status, "cursor": cursor, "limit": str(limit)}
        params = {k: v for k, v in query.items() if v}
        return await self._call(
            "admin_notifications", "GET", "v1/admin-notifications", caller, AdminNotificationPage, params=params
        )

    async def admin_notification(self, notification_id: int, caller: Caller) -> AdminNotification:
        path = f"v1/admin-notifications/{notification_id}"
        return await self._call("admin_notification", "GET", path, caller, AdminNotification)

    async def retry_record(self, record_id: int, caller: Caller) -> SyncRecord:
        return await self._call("retry_record", "POST", f"v1/sync-records/{record_id}/retry", caller, SyncRecord)

    async def retry_failed(self, system_code: str, customer_id: str | None, caller: Caller) -> BulkRetryResult:
        # The console checked the code against its list; another one is the connector's to refuse (422).
        body = BulkRetryRequest(system_code=cast("SystemCode", system_code), customer_id=customer_id or None)
        return await self._call(
            "retry_failed", "POST", "v1/sync-records/retry", caller, BulkRetryResult, json_body=body
        )

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        caller: Caller,
        result_type: type[T],
        *,
        params: dict[str, str] | None = None,
        json_body: msgspec.Struct | None = None,
    ) -> T:
        started = time.perf_counter()
        headers = self._headers(caller)
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                method, path, params=params, headers=headers, data=_encode(json_body)
            ) as response:
                status, body = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._count(operation, "unavailable", started)
            log.warning("connector_call_failed", operation=operation, error=type(exc).__name__, url=self._settings.url)
            raise ConnectorUnavailable(
                f"the sync-connector at {self._settings.url} did not answer ({type(exc).__name__})"
            ) from exc
        if status >= 400:  # noqa: PLR2004
            self._count(operation, str(status), started)
            raise _error(status, body, operation)
        self._count(operation, "ok", started)
        try:
            return msgspec.json.decode(body, type=result_type)
        except msgspec.DecodeError as exc:
            log.warning("connector_answer_undecodable", operation=operation, error=str(exc))
            raise ConnectorUnavailable(f"the sync-connector answered something unexpected: {exc}") from exc

    def _headers(self, caller: Caller) -> dict[str, str]:
        headers = {"User-Agent": _user_agent(caller.user_agent)}
        if token := caller.token or self._settings.token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _count(self, operation: str, outcome: str, started: float) -> None:
        self._metrics.calls.labels(operation, outcome).inc()
        self._metrics.seconds.labels(operation).observe(time.perf_counter() - started)


def _encode(body: msgspec.Struct | None) -> bytes | None:
    return None if body is None else msgspec.json.encode(body)


def _path(segment: str) -> str:
    return quote(segment, safe="")


def _user_agent(browser: str | None) -> str:
    # The connector audits the user agent: name ourselves and the person's browser.
    return f"{USER_AGENT} ({browser[:300]})" if browser else USER_AGENT


def _error(status: int, body: bytes, operation: str) -> AppError:
    try:
        problem = msgspec.json.decode(body, type=_Problem)
    except msgspec.DecodeError:
        problem = _Problem()
    detail = problem.detail or f"HTTP {status}"
    log.info("connector_call_refused", operation=operation, status=status, code=problem.code)
    error_type = _ERRORS_BY_STATUS.get(status)
    if error_type is None:
        return ConnectorUnavailable(f"the sync-connector failed: {detail}")
    return error_type(detail, connector_code=problem.code)

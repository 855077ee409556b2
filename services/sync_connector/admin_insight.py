"""Read-only admin views for operators' tools (the profile service's console): what this
connector sees of the pipeline, and one record with every attempt.

``GET /v1/pipeline-status``: per system, how many records are in each status (from the
status counts the records' triggers keep, shared by every instance: no scan of the history),
and this instance's circuit breaker state and consumer lag (from its own gauges: breakers
and partition assignments are per instance).
``GET /v1/sync-records/{id}``: the record and its attempts, oldest first.
"""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connector_admin import PipelineStatus, SyncAttempt, SyncRecordDetail, SystemPipelineStatus
from libs.kit.errors import ValidationError
from services.sync_connector import status_counts
from services.sync_connector.admin import SyncRecordNotFound
from services.sync_connector.admin_http import RecordId
from services.sync_connector.admin_store import SYNC_RECORDS
from services.sync_connector.auth import READ, requires
from services.sync_connector.breaker import BreakerState
from services.sync_connector.http_support import problems
from services.sync_connector.sinks import EXTERNAL_SYSTEMS

_RECORD = text(f"SELECT {SYNC_RECORDS.columns} FROM {SYNC_RECORDS.name} WHERE id = :id")  # noqa: S608 - fixed names
_ATTEMPTS = text("""
    SELECT attempt_no, outcome, http_status, error_message, duration_ms, attempted_at
    FROM sync.external_sync_attempts WHERE record_id = :id ORDER BY attempt_no
""")


def _gauges(registry: CollectorRegistry) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Breaker state and lag per partition, by system code, from this instance's gauges."""
    breakers: dict[str, str] = {}
    lag: dict[str, dict[str, int]] = {}
    for family in registry.collect():
        for sample in family.samples:
            code = sample.labels.get("system_code")
            if code is None:
                continue
            if sample.name == "circuit_breaker_state":
                breakers[code] = BreakerState(int(sample.value)).name.lower()
            elif sample.name == "consumer_lag":
                lag.setdefault(code, {})[sample.labels["partition"]] = int(sample.value)
    return breakers, lag


def insight_routes(engine: AsyncEngine, registry: CollectorRegistry) -> list[HTTPRouteHandler]:
    @get(
        "/v1/pipeline-status",
        operation_id="getPipelineStatus",
        summary="Per system: records by status, breaker and consumer lag",
        responses=problems(),
        **requires(READ, "Record counts are every instance's; breaker state and lag those of the instance answering."),
    )
    async def pipeline_status() -> PipelineStatus:
        # The status counts kept by triggers and the open records' index: no scan of the history.
        codes = [system.code for system in EXTERNAL_SYSTEMS]
        async with engine.connect() as connection:
            by_system = await status_counts.status_counts(connection, codes)
            oldest = await status_counts.oldest_open(connection, codes)
        breakers, lag = _gauges(registry)
        systems = [
            SystemPipelineStatus(
                system_code=system.code,
                system_name=system.name,
                counts=by_system[system.code],
                oldest_open_at=oldest.get(system.code),
                breaker_state=breakers.get(system.code, "unknown"),
                consumer_lag=sum(lag[system.code].values()) if lag.get(system.code) else None,
                partition_lag=lag.get(system.code, {}),
            )
            for system in EXTERNAL_SYSTEMS
        ]
        return PipelineStatus(systems, datetime.now(UTC))

    @get(
        "/v1/sync-records/{record_id:str}",
        operation_id="getSyncRecord",
        summary="One sync record with every attempt",
        responses=problems(ValidationError, SyncRecordNotFound),
        **requires(READ, "The record and its attempts, oldest first."),
    )
    async def record_detail(record_id: RecordId) -> SyncRecordDetail:
        async with engine.connect() as connection:
            row = (await connection.execute(_RECORD, {"id": int(record_id)})).mappings().first()
            if row is None:
                raise SyncRecordNotFound(f"sync record {record_id} does not exist")
            attempts = (await connection.execute(_ATTEMPTS, {"id": int(record_id)})).mappings().all()
        return SyncRecordDetail(**row, attempts=[SyncAttempt(**a) for a in attempts])

    return [pipeline_status, record_detail]

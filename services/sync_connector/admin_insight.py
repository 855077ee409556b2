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

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.errors import ValidationError
from services.sync_connector import status_counts
from services.sync_connector.admin import SyncRecordNotFound
from services.sync_connector.admin_store import SYNC_RECORDS, SyncRecordView
from services.sync_connector.breaker import BreakerState
from services.sync_connector.http_support import json_response
from services.sync_connector.sinks import EXTERNAL_SYSTEMS

_RECORD = text(f"SELECT {SYNC_RECORDS.columns} FROM {SYNC_RECORDS.name} WHERE id = :id")  # noqa: S608 - fixed names
_ATTEMPTS = text("""
    SELECT attempt_no, outcome, http_status, error_message, duration_ms, attempted_at
    FROM sync.external_sync_attempts WHERE record_id = :id ORDER BY attempt_no
""")


class SystemPipelineStatus(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    system_name: str
    counts: dict[str, int]  # every sync status, zero when none
    oldest_open_at: datetime | None  # the oldest pending or retrying record
    breaker_state: str  # closed | open | half_open | unknown (this instance)
    consumer_lag: int | None  # over this instance's assigned partitions; None when it has none
    partition_lag: dict[str, int]


class PipelineStatus(msgspec.Struct, frozen=True, rename="camel"):
    systems: list[SystemPipelineStatus]
    generated_at: datetime


class SyncAttemptView(msgspec.Struct, frozen=True, rename="camel"):
    attempt_no: int
    outcome: str
    http_status: int | None
    error_message: str | None
    duration_ms: float
    attempted_at: datetime


class SyncRecordDetail(SyncRecordView, frozen=True, rename="camel"):
    attempts: list[SyncAttemptView]


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


def insight_routes(engine: AsyncEngine, registry: CollectorRegistry) -> list[web.RouteDef]:
    async def pipeline_status(_: web.Request) -> web.Response:
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
        return json_response(PipelineStatus(systems, datetime.now(UTC)))

    async def record_detail(request: web.Request) -> web.Response:
        try:
            record_id = int(request.match_info["record_id"])
        except ValueError as exc:
            raise ValidationError("record id must be an integer") from exc
        async with engine.connect() as connection:
            row = (await connection.execute(_RECORD, {"id": record_id})).mappings().first()
            if row is None:
                raise SyncRecordNotFound(f"sync record {record_id} does not exist")
            attempts = (await connection.execute(_ATTEMPTS, {"id": record_id})).mappings().all()
        return json_response(SyncRecordDetail(**row, attempts=[SyncAttemptView(**a) for a in attempts]))

    return [
        web.get("/v1/pipeline-status", pipeline_status),
        web.get("/v1/sync-records/{record_id}", record_detail),
    ]

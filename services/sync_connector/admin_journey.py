"""Read-only views for the console's customer journey page (viewer role, like every GET).

``GET /v1/sync-journeys/{customer_id}?limit=20``: the customer's newest ``limit`` events at this
connector, newest first; per event its records (one per system) and per record its attempts,
oldest first (at most ``ATTEMPTS_PER_RECORD`` of them, the newest; ``attemptCount`` says how many
there are in all). The event's ``changedAt`` and ``traceparent`` come from what the record stored
of the message (its payload and CloudEvents headers). 404 when the connector has no record of
the customer.

``GET /v1/delivery-stats?windowS=3600&buckets=30``: per system, the deliveries (records that
reached ``success``) completed in the last ``windowS`` seconds, in ``buckets`` equal buckets
aligned to whole multiples of the bucket length (the last one still filling), each with its
count and the delivery latency (from the change, the event's ``changedAt``, to the system's
acknowledgement, the record's ``completed_at``): median, 95th percentile and maximum. Read from
the terminal records' partial index on ``completed_at``; times are the database's, as the
records' own ``completed_at`` are.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connector_admin import (
    DeliveryBucket,
    DeliveryStats,
    JourneyEvent,
    JourneyRecord,
    SyncAttempt,
    SyncJourney,
    SystemDeliveries,
)
from libs.kit.errors import NotFoundError, ValidationError
from services.sync_connector.admin_http import CustomerId
from services.sync_connector.auth import READ, requires
from services.sync_connector.http_support import problems
from services.sync_connector.sinks import EXTERNAL_SYSTEMS

DEFAULT_JOURNEY_EVENTS = 20
MAX_JOURNEY_EVENTS = 100
ATTEMPTS_PER_RECORD = 50
DEFAULT_WINDOW_S = 3600
MAX_WINDOW_S = 7 * 86400
DEFAULT_BUCKETS = 30
MAX_BUCKETS = 240

# The customer's newest events (by their newest record; ix_sync_customer), then their records.
_JOURNEY_RECORDS = text("""
    WITH events AS (
        SELECT event_id, max(id) AS newest FROM sync.external_sync_records
        WHERE customer_id = :customer_id
        GROUP BY event_id ORDER BY newest DESC LIMIT :limit
    )
    SELECT r.id AS record_id, r.event_id::text AS event_id, r.application_id, r.profile_version,
           r.system_code, r.system_name, r.sync_status, r.retry_count, r.redrive_count, r.last_http_status,
           r.error_message, r.next_attempt_at, r.created_at, r.completed_at,
           r.sync_data ->> 'changedAt' AS changed_at, r.event_headers ->> 'traceparent' AS traceparent
    FROM sync.external_sync_records r JOIN events e ON e.event_id = r.event_id
    WHERE r.customer_id = :customer_id
    ORDER BY e.newest DESC, r.system_code
""")
# The newest :per_record attempts of each record (ix_sync_attempts_record), oldest first, with the total.
_JOURNEY_ATTEMPTS = text("""
    SELECT record_id, attempt_no, outcome, http_status, error_message, duration_ms, attempted_at, total
    FROM (
        SELECT a.record_id, a.attempt_no, a.outcome, a.http_status, a.error_message, a.duration_ms, a.attempted_at,
               row_number() OVER (PARTITION BY a.record_id ORDER BY a.attempt_no DESC) AS newest_rank,
               count(*) OVER (PARTITION BY a.record_id) AS total
        FROM sync.external_sync_attempts a
        WHERE a.record_id = ANY(CAST(:record_ids AS bigint[]))
    ) ranked
    WHERE newest_rank <= :per_record
    ORDER BY record_id, attempt_no
""")
_NOW = text("SELECT now()")
# Deliveries completed in [start, end), per system and bucket, and per system over the whole window (the
# grouping set with bucket NULL). The status list matches ix_sync_terminal_completed's predicate.
_DELIVERIES = text("""
    WITH delivered AS (
        SELECT system_code,
               floor(extract(epoch FROM completed_at - CAST(:start AS timestamptz)) / :bucket_s)::int AS bucket,
               greatest(extract(epoch FROM completed_at - CAST(sync_data ->> 'changedAt' AS timestamptz)), 0)
                   AS latency_s
        FROM sync.external_sync_records
        WHERE sync_status IN ('success', 'superseded', 'failed') AND sync_status = 'success'
          AND completed_at >= CAST(:start AS timestamptz) AND completed_at < CAST(:end AS timestamptz)
    )
    SELECT system_code, bucket, count(*) AS deliveries,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_s) AS latency_p50_s,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_s) AS latency_p95_s,
           max(latency_s) AS latency_max_s
    FROM delivered
    GROUP BY GROUPING SETS ((system_code, bucket), (system_code))
""")


class CustomerJourneyNotFound(
    NotFoundError, code="SYNC_JOURNEY_NOT_FOUND", title="No sync record of this customer"
): ...


def _moment(raw: str | None) -> datetime | None:
    """The payload's ``changedAt`` (RFC 3339, written by this connector from a validated event)."""
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def journey_of(customer_id: str, records: list[RowMapping], attempts: list[RowMapping]) -> SyncJourney:
    """Group the records by event (keeping their order) and attach each record's attempts."""
    by_record: dict[int, list[SyncAttempt]] = {}
    totals: dict[int, int] = {}
    for row in attempts:
        values = dict(row)
        totals[row["record_id"]] = int(values.pop("total"))
        values.pop("record_id")
        by_record.setdefault(row["record_id"], []).append(SyncAttempt(**values))
    events: dict[str, JourneyEvent] = {}
    for row in records:
        record = JourneyRecord(
            record_id=row["record_id"],
            system_code=row["system_code"],
            system_name=row["system_name"],
            sync_status=row["sync_status"],
            retry_count=row["retry_count"],
            redrive_count=row["redrive_count"],
            last_http_status=row["last_http_status"],
            error_message=row["error_message"],
            next_attempt_at=row["next_attempt_at"],
            created_at=row["created_at"],
            completed_at=row["completed_at"],
            attempt_count=totals.get(row["record_id"], 0),
            attempts=by_record.get(row["record_id"], []),
        )
        event = events.get(row["event_id"])
        if event is None:
            events[row["event_id"]] = JourneyEvent(
                event_id=row["event_id"],
                application_id=row["application_id"],
                profile_version=row["profile_version"],
                changed_at=_moment(row["changed_at"]),
                traceparent=row["traceparent"],
                records=[record],
            )
        else:
            event.records.append(record)
    return SyncJourney(customer_id, list(events.values()), ATTEMPTS_PER_RECORD)


def bucket_window(now: datetime, window_s: int, buckets: int) -> tuple[datetime, datetime, int]:
    """``(start, end, bucket_s)``: ``buckets`` buckets of whole seconds covering ``window_s``, the last one
    holding ``now``; their edges are whole multiples of the bucket length (stable across refreshes)."""
    bucket_s = max(1, math.ceil(window_s / buckets))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    elapsed = (now - epoch).total_seconds()
    end = epoch + timedelta(seconds=(math.floor(elapsed / bucket_s) + 1) * bucket_s)
    return end - timedelta(seconds=bucket_s * buckets), end, bucket_s


def delivery_stats(
    rows: list[RowMapping], start: datetime, end: datetime, bucket_s: int, buckets: int
) -> DeliveryStats:
    """Every system and every bucket, zeros where nothing was delivered."""
    per_bucket: dict[tuple[str, int], RowMapping] = {}
    totals: dict[str, RowMapping] = {}
    for row in rows:
        if row["bucket"] is None:
            totals[row["system_code"]] = row
        else:
            per_bucket[(row["system_code"], row["bucket"])] = row
    systems = []
    for system in EXTERNAL_SYSTEMS:
        series = [
            _bucket(start + timedelta(seconds=i * bucket_s), per_bucket.get((system.code, i))) for i in range(buckets)
        ]
        total = totals.get(system.code)
        systems.append(
            SystemDeliveries(
                system_code=system.code,
                system_name=system.name,
                deliveries=int(total["deliveries"]) if total else 0,
                latency_p50_s=_seconds(total, "latency_p50_s"),
                latency_p95_s=_seconds(total, "latency_p95_s"),
                latency_max_s=_seconds(total, "latency_max_s"),
                buckets=series,
            )
        )
    return DeliveryStats(start, end, bucket_s, systems)


def _bucket(start: datetime, row: RowMapping | None) -> DeliveryBucket:
    return DeliveryBucket(
        start=start,
        deliveries=int(row["deliveries"]) if row else 0,
        latency_p50_s=_seconds(row, "latency_p50_s"),
        latency_p95_s=_seconds(row, "latency_p95_s"),
        latency_max_s=_seconds(row, "latency_max_s"),
    )


def _seconds(row: RowMapping | None, name: str) -> float | None:
    value: Any = row[name] if row else None
    return None if value is None else round(float(value), 3)


JourneyLimit = Annotated[int, QueryParameter(ge=1, le=MAX_JOURNEY_EVENTS, description="The newest events to show.")]
WindowS = Annotated[int, QueryParameter(name="windowS", ge=60, le=MAX_WINDOW_S, description="The window, in seconds.")]
Buckets = Annotated[int, QueryParameter(ge=1, le=MAX_BUCKETS, description="Equal buckets the window is cut into.")]


def journey_routes(engine: AsyncEngine) -> list[HTTPRouteHandler]:
    @get(
        "/v1/sync-journeys/{customer_id:str}",
        operation_id="getSyncJourney",
        summary="A customer's newest events with every system's record and attempts",
        responses=problems(ValidationError, CustomerJourneyNotFound),
        **requires(READ, "Newest events first; per record its newest attempts, oldest first (404: no record)."),
    )
    async def sync_journey(customer_id: CustomerId, limit: JourneyLimit = DEFAULT_JOURNEY_EVENTS) -> SyncJourney:
        async with engine.connect() as connection, connection.begin():
            records = list(
                (await connection.execute(_JOURNEY_RECORDS, {"customer_id": customer_id, "limit": limit})).mappings()
            )
            if not records:
                raise CustomerJourneyNotFound(f"the sync-connector has no record of customer {customer_id!r}")
            ids = [row["record_id"] for row in records]
            attempts = list(
                (
                    await connection.execute(_JOURNEY_ATTEMPTS, {"record_ids": ids, "per_record": ATTEMPTS_PER_RECORD})
                ).mappings()
            )
        return journey_of(customer_id, records, attempts)

    @get(
        "/v1/delivery-stats",
        operation_id="getDeliveryStats",
        summary="Per system, deliveries and their latency in equal buckets of a window",
        responses=problems(ValidationError),
        **requires(READ, "Deliveries completed in the window, per system and bucket (the last one still filling)."),
    )
    async def deliveries(window_s: WindowS = DEFAULT_WINDOW_S, buckets: Buckets = DEFAULT_BUCKETS) -> DeliveryStats:
        async with engine.connect() as connection:
            now = (await connection.execute(_NOW)).scalar_one()
            start, end, bucket_s = bucket_window(now, window_s, buckets)
            params = {"start": start, "end": end, "bucket_s": bucket_s}
            rows = list((await connection.execute(_DELIVERIES, params)).mappings())
        return delivery_stats(rows, start, end, bucket_s, buckets)

    return [sync_journey, deliveries]

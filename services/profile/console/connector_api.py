"""The sync-connector's admin API as this service reads it: Structs mirroring its JSON (camelCase).

Kept apart from the connector's own code on purpose (services never import each other):
this is our side of an HTTP contract: a field that disappears there fails loudly here, new
fields are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class SyncRecord(msgspec.Struct, frozen=True, rename="camel"):
    id: int
    event_id: str
    customer_id: str
    application_id: str
    system_code: str
    system_name: str
    sync_status: str
    retry_count: int
    max_retry_count: int | None  # None: no count cap, retried until the delivery deadline
    redrive_count: int
    profile_version: int
    last_http_status: int | None
    error_message: str | None
    next_attempt_at: datetime | None
    blocked_by_record_id: int | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    sync_data: Any = None


class SyncAttempt(msgspec.Struct, frozen=True, rename="camel"):
    attempt_no: int
    outcome: str
    http_status: int | None
    error_message: str | None
    duration_ms: float
    attempted_at: datetime


class SyncRecordDetail(SyncRecord, frozen=True, rename="camel"):
    attempts: list[SyncAttempt] = msgspec.field(default_factory=list)


class SyncRecordPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[SyncRecord]
    next_cursor: str | None


class SystemSyncStatus(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    system_name: str
    sync_status: str
    record_id: int
    event_id: str
    profile_version: int
    applied_version: int | None
    retry_count: int
    error_message: str | None
    next_attempt_at: datetime | None
    updated_at: datetime


class CustomerSyncStatus(msgspec.Struct, frozen=True, rename="camel"):
    customer_id: str
    systems: list[SystemSyncStatus]


class BulkRetryResult(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    count: int
    record_ids: list[int]
    limit_reached: bool


class SystemPipelineStatus(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    system_name: str
    counts: dict[str, int]
    oldest_open_at: datetime | None
    breaker_state: str
    consumer_lag: int | None
    partition_lag: dict[str, int] = msgspec.field(default_factory=dict)


class PipelineStatus(msgspec.Struct, frozen=True, rename="camel"):
    systems: list[SystemPipelineStatus]
    generated_at: datetime


class RecordFilter(msgspec.Struct, frozen=True):
    customer_id: str | None = None
    system_code: str | None = None
    status: str | None = None


class JourneyAttempt(msgspec.Struct, frozen=True, rename="camel"):
    attempt_no: int
    outcome: str
    http_status: int | None
    error_message: str | None
    duration_ms: float
    attempted_at: datetime


class JourneyRecord(msgspec.Struct, frozen=True, rename="camel"):
    record_id: int
    system_code: str
    system_name: str
    sync_status: str
    retry_count: int
    redrive_count: int
    last_http_status: int | None
    error_message: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    attempt_count: int  # every attempt made; ``attempts`` holds the newest ones
    attempts: list[JourneyAttempt]


class JourneyEvent(msgspec.Struct, frozen=True, rename="camel"):
    event_id: str
    application_id: str
    profile_version: int
    changed_at: datetime | None
    traceparent: str | None
    records: list[JourneyRecord]


class SyncJourney(msgspec.Struct, frozen=True, rename="camel"):
    """A customer's newest events at the connector, newest first, with every system's record and attempts."""

    customer_id: str
    events: list[JourneyEvent]
    attempts_per_record: int


class DeliveryBucket(msgspec.Struct, frozen=True, rename="camel"):
    start: datetime
    deliveries: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_max_s: float | None


class SystemDeliveries(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    system_name: str
    deliveries: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_max_s: float | None
    buckets: list[DeliveryBucket]


class DeliveryStats(msgspec.Struct, frozen=True, rename="camel"):
    """Per system, deliveries and their latency (change to acknowledgement) in equal buckets of a window."""

    window_start: datetime
    window_end: datetime
    bucket_s: int
    systems: list[SystemDeliveries]

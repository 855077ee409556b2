"""The sync-connector's admin API (``/v1/...`` on ``CONNECTOR_HTTP_PORT``): its request and response bodies.

One declaration for both sides: the connector's routes encode and decode these, the profile's
console decodes the same types. JSON is camelCase. A response type tolerates fields it does not
know (a newer connector may add some); a request type forbids them (the API answers 422).
The OpenAPI document at the connector's ``/schema/openapi.json`` is generated from these types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

# Where the admin API takes a customer id (paths, filters, bodies): as the sync tables store it.
CUSTOMER_ID_MAX_LENGTH = 50
# No NUL character: PostgreSQL cannot hold one in text, so a filter with it could match nothing.
NO_NUL_PATTERN = "^[^\\x00]*$"
FilterCustomerId = Annotated[str, msgspec.Meta(min_length=1, max_length=CUSTOMER_ID_MAX_LENGTH, pattern=NO_NUL_PATTERN)]
SystemCode = Literal["CRM", "CMS", "CSS"]  # the external systems (contracts/external_systems.py)
Channel = Literal["email", "sms"]  # the customer notifications' channels
ResendableStatus = Literal["failed", "skipped_no_contact", "skipped_stale"]


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]


class ReadinessChecks(msgspec.Struct, frozen=True):
    database: bool
    broker: bool
    consumers: bool


class Readiness(msgspec.Struct, frozen=True):
    ready: bool
    checks: ReadinessChecks


# The external systems' sync records.


class SyncRecord(msgspec.Struct, frozen=True, rename="camel"):
    """One change to one external system: its status, attempts made and what it sent."""

    id: int
    event_id: str
    customer_id: str
    application_id: str
    system_code: str
    system_name: str
    sync_status: str
    retry_count: int
    max_retry_count: int | None  # the optional count cap (None: retried until its delivery deadline)
    redrive_count: int
    profile_version: int
    last_http_status: int | None
    error_message: str | None
    next_attempt_at: datetime | None
    blocked_by_record_id: int | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    sync_data: Any


class SyncAttempt(msgspec.Struct, frozen=True, rename="camel"):
    attempt_no: int
    outcome: str  # applied | already_applied | superseded | rejected | retryable
    http_status: int | None
    error_message: str | None
    duration_ms: float
    attempted_at: datetime


class SyncRecordDetail(SyncRecord, frozen=True, rename="camel"):
    """A record and every attempt, oldest first."""

    attempts: list[SyncAttempt]


class SyncRecordFilter(msgspec.Struct, frozen=True, rename="camel"):
    """The listing's filters (query parameters of ``GET /v1/sync-records``); None: any."""

    customer_id: str | None = None
    system_code: str | None = None
    status: str | None = None
    event_id: str | None = None


class SyncRecordPage(msgspec.Struct, frozen=True, rename="camel"):
    """Newest first; ``nextCursor`` (None on the last page) continues the listing."""

    items: list[SyncRecord]
    next_cursor: str | None


class SystemSyncStatus(msgspec.Struct, frozen=True, rename="camel"):
    """The latest record of one customer at one system."""

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


class BulkRetryRequest(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """Retry every failed record of a system (of one customer, when given), up to the connector's bulk limit."""

    system_code: SystemCode
    status: Literal["failed"] = "failed"
    customer_id: FilterCustomerId | None = None


class BulkRetryResult(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    count: int
    record_ids: list[int]
    limit_reached: bool  # more failed records may remain: call again


class SystemPipelineStatus(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    system_name: str
    counts: dict[str, int]  # every sync status, zero when none
    oldest_open_at: datetime | None  # the oldest pending or retrying record
    breaker_state: str  # closed | open | half_open | unknown (of the connector instance that answers)
    consumer_lag: int | None  # over that instance's assigned partitions; None when it has none
    partition_lag: dict[str, int]


class PipelineStatus(msgspec.Struct, frozen=True, rename="camel"):
    systems: list[SystemPipelineStatus]
    generated_at: datetime


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
    created_at: datetime  # when the connector first recorded the event for the system
    completed_at: datetime | None
    attempt_count: int  # every attempt made; ``attempts`` holds the newest ``attemptsPerRecord``
    attempts: list[SyncAttempt]


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
    latency_p50_s: float | None  # None: no delivery in the bucket
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


# The customer notifications.


class Notification(msgspec.Struct, frozen=True, rename="camel"):
    """One message to one customer on one channel (no contact data: the connector never holds any)."""

    id: int
    event_id: str
    channel: str
    customer_id: str
    application_id: str
    status: str
    attempts: int
    max_attempts: int | None  # the optional count cap (None: sent until its deadline)
    resend_count: int
    next_attempt_at: datetime | None
    language: str | None
    message_id: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class NotificationAttempt(msgspec.Struct, frozen=True, rename="camel"):
    attempt_no: int
    outcome: str
    error: str | None
    duration_ms: float
    attempted_at: datetime


class NotificationDetail(msgspec.Struct, frozen=True, rename="camel"):
    notification: Notification
    event: Any  # what the message says: names, application id, time
    attempt_log: list[NotificationAttempt]


class NotificationPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[Notification]
    next_cursor: str | None


class BulkResendRequest(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """Re-send every notification of a channel in a status (of one customer, when given), up to the bulk limit."""

    channel: Channel
    status: ResendableStatus = "failed"
    customer_id: FilterCustomerId | None = None


class BulkResendResult(msgspec.Struct, frozen=True, rename="camel"):
    channel: str
    status: str
    count: int
    notification_ids: list[int]
    limit_reached: bool  # more records may match: call again


# The admins' notifications (one per cause and window).


class AdminNotificationExample(msgspec.Struct, frozen=True):
    subject: str
    at: datetime
    detail: str | None = None


class AdminNotification(msgspec.Struct, frozen=True, rename="camel"):
    """A window of one cause as mailed (or to be mailed) to the admins."""

    id: int
    notice_id: str
    cause_key: str
    window_start: datetime
    window_end: datetime
    occurrences: int
    occurrences_mailed: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    examples: list[AdminNotificationExample]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    deliver_by: datetime | None
    message_id: str | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


class AdminNotificationPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[AdminNotification]
    next_cursor: str | None

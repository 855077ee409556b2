"""The sync-connector's admin API as this console reads it: the shapes are ``contracts.connector_admin``'s.

One declaration for both sides (the connector encodes these, the console decodes them); services
never import each other. The names the console's pages know them by are kept here.
"""

from __future__ import annotations

from contracts.connector_admin import (
    AdminNotification,
    AdminNotificationPage,
    BulkRetryResult,
    CustomerSyncStatus,
    DeliveryStats,
    JourneyEvent,
    JourneyRecord,
    PipelineStatus,
    SyncAttempt,
    SyncJourney,
    SyncRecord,
    SyncRecordDetail,
    SyncRecordPage,
)
from contracts.connector_admin import SyncAttempt as JourneyAttempt
from contracts.connector_admin import SyncRecordFilter as RecordFilter

__all__ = [
    "AdminNotification",
    "AdminNotificationPage",
    "BulkRetryResult",
    "CustomerSyncStatus",
    "DeliveryStats",
    "JourneyAttempt",
    "JourneyEvent",
    "JourneyRecord",
    "PipelineStatus",
    "RecordFilter",
    "SyncAttempt",
    "SyncJourney",
    "SyncRecord",
    "SyncRecordDetail",
    "SyncRecordPage",
]

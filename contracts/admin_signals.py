"""The profile service's admin signals, as the sync-connector reads them (``GET /internal/v1/admin-signals``).

Failed and refused updates not yet noted (a queue: ``POST /internal/v1/admin-signals/noted`` removes them)
and the outbox rows the relay parked (a state: listed as long as they are parked). Ids and codes only.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

SIGNALS_PATH = "/internal/v1/admin-signals"
NOTED_PATH = "/internal/v1/admin-signals/noted"


class AdminSignal(msgspec.Struct, frozen=True, rename="camel"):
    id: int
    kind: str  # update_failed (the application is update_failed) | update_refused (INVALID_STATUS)
    code: str
    occurred_at: datetime
    application_id: str | None = None
    customer_id: str | None = None
    trace_id: str | None = None


class ParkedRow(msgspec.Struct, frozen=True, rename="camel"):
    id: str
    aggregate_id: str
    attempts: int
    created_at: datetime
    last_error: str | None = None


class ParkedOutbox(msgspec.Struct, frozen=True, rename="camel"):
    rows: list[ParkedRow]
    complete: bool  # every parked row is listed


class AdminSignals(msgspec.Struct, frozen=True, rename="camel"):
    signals: list[AdminSignal]
    parked_outbox: ParkedOutbox

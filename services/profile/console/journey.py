"""A customer's journey: each change from its commit to every external system, in one page.

Per change (newest first): the commit time (the outbox row's ``created_at``), the publish time
(``published_at``), the trace (its id from the row's ``traceparent``, linked to the trace UI when
``PROFILE_CONSOLE_TRACE_URL_TEMPLATE`` is set) and, per system, the sync record with every attempt
(outcome, HTTP status, time). Above them, per system, the deliveries and their latency over the
last hour as small server-drawn SVG charts. The outbox rows come from the outbox admin use case;
the records, attempts and delivery statistics from the sync-connector's admin API (a connector
that does not answer is said so on the page; the outbox part still renders). A change the
connector knows but whose outbox row retention already removed is shown with the connector's
``changedAt`` as its time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from libs.kit.errors import AppError, ValidationError
from libs.outbox.admin import OutboxEntry
from services.profile.console.charts import ChartBucket, delivery_chart
from services.profile.console.connector_api import DeliveryStats, JourneyEvent, JourneyRecord, SyncJourney
from services.profile.console.connector_client import ConnectorClient
from services.profile.console.context import console_of
from services.profile.console.forms import PathId, values
from services.profile.console.rendering import render, see_other
from services.profile.console.session import READ, caller
from services.profile.console.sync import SYSTEMS
from services.profile.outbox_admin.service import OutboxAdminService

# The newest changes shown (outbox rows and connector events each read this many).
JOURNEY_CHANGES = 20
MAX_CUSTOMER_ID = 50
CHART_WINDOW_S = 3600
CHART_BUCKETS = 30
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?P<trace_id>[0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_NO_TRACE = "0" * 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent``, or None when there is none or it is malformed."""
    match = _TRACEPARENT.match((traceparent or "").strip().lower())
    if match is None or match["trace_id"] == _NO_TRACE:
        return None
    return match["trace_id"]


@dataclass(frozen=True)
class SystemLeg:
    """One change at one system: its sync record, or None when the connector has not recorded it yet."""

    system_code: str
    record: JourneyRecord | None


@dataclass(frozen=True)
class Change:
    event_id: str
    profile_version: int | None
    committed_at: datetime | None
    published_at: datetime | None
    outbox_status: str | None  # None: no outbox row (removed by retention)
    trace_id: str | None
    trace_url: str | None
    legs: list[SystemLeg]

    @property
    def publish_delay_s(self) -> float | None:
        if self.committed_at is None or self.published_at is None:
            return None
        return max((self.published_at - self.committed_at).total_seconds(), 0.0)

    def delivery_delay_s(self, record: JourneyRecord) -> float | None:
        """Commit to the system's acknowledgement, for a delivered record."""
        if record.sync_status != "success" or record.completed_at is None or self.committed_at is None:
            return None
        return max((record.completed_at - self.committed_at).total_seconds(), 0.0)


def changes_of(
    entries: Sequence[OutboxEntry],
    journey: SyncJourney | None,
    trace_url: Callable[[str], str | None],
    limit: int = JOURNEY_CHANGES,
) -> list[Change]:
    """The outbox rows and the connector's events joined on the event id (= outbox id), newest first."""
    events = {event.event_id: event for event in journey.events} if journey else {}
    changes = [_change(str(entry.id), entry, events.pop(str(entry.id), None), trace_url) for entry in entries]
    changes += [_change(event.event_id, None, event, trace_url) for event in events.values()]
    changes.sort(key=lambda c: (c.committed_at is not None, c.committed_at or _EPOCH), reverse=True)
    return changes[:limit]


def _change(
    event_id: str, entry: OutboxEntry | None, event: JourneyEvent | None, trace_url: Callable[[str], str | None]
) -> Change:
    """One change from its outbox row, the connector's event or both; the row's values come first."""
    headers = (entry.headers or {}) if entry else {}
    trace_id = trace_id_of(headers.get("traceparent")) or (trace_id_of(event.traceparent) if event else None)
    version = (entry.payload or {}).get("profileVersion") if entry else None
    return Change(
        event_id=event_id,
        profile_version=version if isinstance(version, int) else (event.profile_version if event else None),
        committed_at=entry.created_at if entry else (event.changed_at if event else None),
        published_at=entry.published_at if entry else None,
        outbox_status=entry.status if entry else None,
        trace_id=trace_id,
        trace_url=trace_url(trace_id) if trace_id else None,
        legs=_legs(event.records if event else []),
    )


def _legs(records: Sequence[JourneyRecord]) -> list[SystemLeg]:
    by_system = {record.system_code: record for record in records}
    known = [SystemLeg(code, by_system.pop(code, None)) for code in SYSTEMS]
    return known + [SystemLeg(code, record) for code, record in sorted(by_system.items())]


def charts_of(stats: DeliveryStats) -> list[dict[str, Any]]:
    """Per system: its totals and the SVG chart of its buckets (p95 latency on the line)."""
    return [
        {
            "system": system,
            "svg": delivery_chart(
                [ChartBucket(b.start, b.deliveries, b.latency_p95_s) for b in system.buckets],
                stats.bucket_s,
                chart_id=f"chart-{system.system_code.lower()}",
                label=f"{system.system_code}: deliveries and p95 delivery latency, last hour",
            ),
        }
        for system in stats.systems
    ]


def _journey_path(customer_id: str) -> str:
    return f"/console/journey/{quote(customer_id, safe='')}"


@get("/journey", guards=READ, name="console:journey")
async def journey_lookup(request: Request[Any, Any, Any]) -> Template | Redirect:
    customer_id = values(request, "customerId")["customerId"]
    if customer_id:
        return see_other(_journey_path(customer_id[:MAX_CUSTOMER_ID]))
    return render(request, "journey.html", {"customer_id": ""}, page="journey", title="Customer journey")


@get("/journey/{customer_id:str}", guards=READ)
async def customer_journey(
    request: Request[Any, Any, Any],
    customer_id: PathId,
    outbox_admin: NamedDependency[OutboxAdminService],
    connector: NamedDependency[ConnectorClient],
) -> Template:
    if len(customer_id) > MAX_CUSTOMER_ID:
        raise ValidationError(f"a customer id has at most {MAX_CUSTOMER_ID} characters")
    who = caller(request)
    entries, journey, stats = await asyncio.gather(
        outbox_admin.latest_of(customer_id, JOURNEY_CHANGES),
        connector.journey(customer_id, who, limit=JOURNEY_CHANGES),
        connector.delivery_stats(who, window_s=CHART_WINDOW_S, buckets=CHART_BUCKETS),
        return_exceptions=True,
    )
    if isinstance(entries, BaseException):
        raise entries
    for result in (journey, stats):
        if isinstance(result, BaseException) and not isinstance(result, AppError):
            raise result
    settings = console_of(request).settings
    context = {
        "customer_id": customer_id,
        "changes": changes_of(entries, journey if isinstance(journey, SyncJourney) else None, settings.trace_url),
        "max_changes": JOURNEY_CHANGES,
        "journey_error": journey.detail if isinstance(journey, AppError) else None,
        "charts": charts_of(stats) if isinstance(stats, DeliveryStats) else [],
        "stats": stats if isinstance(stats, DeliveryStats) else None,
        "stats_error": stats.detail if isinstance(stats, AppError) else None,
        "connector_url": connector.base_url,
    }
    return render(request, "journey.html", context, page="journey", title=f"Journey of {customer_id}")

"""What the admins must hear of from the profile service (seed 000 6.2 notifyAdmin), for the sync-connector's
admin notifications: failed and refused updates (a queue the operation log fills) and the outbox rows the
relay parked (a state, read from the outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from contracts.admin_signals import AdminSignal, AdminSignals, ParkedOutbox, ParkedRow
from libs.outbox.admin import OutboxFilter
from libs.outbox.table import OutboxStatus
from services.profile.outbox_admin.service import OutboxAdminService

MAX_SIGNALS = 1_000


class AdminSignalQueue(Protocol):
    async def pending(self, limit: int) -> list[AdminSignal]: ...
    async def noted(self, ids: Sequence[int]) -> int: ...


@dataclass(frozen=True)
class AdminSignalService:
    queue: AdminSignalQueue
    outbox: OutboxAdminService

    async def read(self, limit: int) -> AdminSignals:
        """The oldest ``limit`` signals not yet noted, and the parked outbox rows (oldest first)."""
        signals = await self.queue.pending(min(limit, MAX_SIGNALS))
        page = await self.outbox.list_entries(
            OutboxFilter(status=OutboxStatus.FAILED), None, min(limit, self.outbox.limits.max_page_size)
        )
        rows = [
            ParkedRow(str(e.id), e.aggregate_id, e.attempts, e.created_at, (e.last_error or "")[:300] or None)
            for e in page.items
        ]
        return AdminSignals(signals, ParkedOutbox(rows, complete=page.next_after is None))

    async def noted(self, ids: Sequence[int]) -> int:
        """The signals the connector has counted leave the queue; how many did."""
        return await self.queue.noted(ids[:MAX_SIGNALS])

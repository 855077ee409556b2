"""The fast path's units: an event read from Kafka, a claim to call for a sync record, and waves of a batch."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from opentelemetry import trace

from contracts.events import CustomerNameChanged
from services.sync_connector.engine import Claim
from services.sync_connector.records import SyncRecord


class AcceptedEvent(msgspec.Struct, frozen=True):
    """An event just read from Kafka, with the span its processing belongs to."""

    event_id: str
    event: CustomerNameChanged
    headers: dict[str, str]
    span: trace.Span = trace.INVALID_SPAN


# The right to make one call for a record (the delivery engine's claim, of a sync record).
SyncClaim = Claim[SyncRecord]


def waves(events: Sequence[AcceptedEvent], max_wave: int) -> list[list[int]]:
    """Indexes of ``events`` in waves of at most ``max_wave``: each customer at most once per wave, a
    customer's events in order across waves.

    All calls of a wave start together; each holds a connection of its system's pool for at most the
    connect + read timeouts, and waits in line for one before that (not a failure). The lease must
    outlive both: the system's pool is sized so that the wait stays short (docs/delivery.md, "One HTTP
    client per system").
    """
    waves: list[list[int]] = []
    last_wave: dict[str, int] = {}  # customer -> the wave of its latest event so far
    for index, accepted in enumerate(events):
        customer = accepted.event.customer_id
        wave = last_wave.get(customer, -1) + 1
        while wave < len(waves) and len(waves[wave]) >= max_wave:
            wave += 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(index)
        last_wave[customer] = wave
    return waves

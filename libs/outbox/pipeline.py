"""The relay's batch pipeline: claim and hand over the next batch while the previous one settles.

Each step claims batch N+1 on the worker session (leaving out the rows of batch N, still
pending) and hands it to the producer, while batch N waits for its acknowledgements and is
marked on a second session. Draining a backlog, the database claims and marks at the same
time and the relay's own work overlaps both; caught up, rows committed while a batch waits
for its acknowledgements are claimed without waiting for them (and for the mark). The
relay sleeps only when a claim finds nothing and nothing is in flight.

Order and fencing are those of ``libs.outbox.publisher``: batch N+1 reaches each partition
after batch N; a key that failed in N holds its rows in N+1 back (not marked, sent again);
after any failure both are settled before the next claim, which then starts again from the
first pending row. Behind a batch some of whose rows never
reached the producer (a poison row, a broker error) nothing is claimed until it is settled:
later rows of those keys must not be sent before them.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import msgspec

from libs.outbox.leases import ShardLeases
from libs.outbox.publisher import BatchPublisher, BatchResult, InFlightBatch
from libs.outbox.settings import RelaySettings


class Step(msgspec.Struct, frozen=True):
    result: BatchResult
    # The claim found fewer rows than a batch and nothing is in flight: sleep until something new arrives.
    caught_up: bool


class BatchPipeline:
    """At most two batches of one relay instance: one settling, one claimed and handed over."""

    def __init__(self, publisher: BatchPublisher, leases: ShardLeases, settings: RelaySettings) -> None:
        self._publisher = publisher
        self._leases = leases
        self._settings = settings
        self.in_flight: InFlightBatch | None = None
        # Shards the batches in flight claim from: the lease keeper releases none of them.
        self.busy: frozenset[int] = frozenset()

    def abandon(self) -> None:
        """The session is lost: rows in flight stay pending and are claimed again (duplicates, in order)."""
        if self.in_flight is not None and self.in_flight.handed is not None:
            self.in_flight.handed.abandon()
        self.in_flight = None
        self.busy = frozenset()

    async def step(self, claim_conn: asyncpg.Connection, mark_conn: asyncpg.Connection, stop: bool) -> Step:
        publisher, previous = self._publisher, self.in_flight
        ownership = self._leases.claimable()
        # Before the first await: the keeper must not release a shard this claim may read.
        self.busy = _shards(previous) | frozenset(ownership.shards)
        overtaking = previous is not None and previous.stopped
        blocked: set[str] = set()  # keys failed in the previous batch hold theirs back in the next
        settling = asyncio.create_task(publisher.settle(mark_conn, previous, blocked)) if previous is not None else None
        try:
            rows = [] if stop or overtaking else await publisher.claim(claim_conn, ownership, previous)
            following = await publisher.send(rows, ownership) if rows else None
            self.busy = _shards(previous, following)
            result = await settling if settling is not None else BatchResult()
        except BaseException:
            if settling is not None:
                settling.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await settling
            raise
        caught_up = len(rows) < self._settings.batch_size and not overtaking
        if following is not None and not result.clean:
            result += await publisher.settle(mark_conn, following, blocked)
            following = None
        self.in_flight = following
        self.busy = _shards(following)
        if following is None or result.clean:
            await publisher.account(result)
        return Step(result, caught_up and following is None)


def _shards(*batches: InFlightBatch | None) -> frozenset[int]:
    return frozenset(shard for batch in batches if batch is not None for shard in batch.ownership.shards)

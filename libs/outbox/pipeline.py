"""The relay's batch pipeline: claim and hand over the next batch while the previous one settles.

Each step claims batch N+1 on the worker session (leaving out every key of batch N, whose
rows are still pending: a per-key barrier) and hands it to the other transactional producer,
while batch N waits for its acknowledgements, its transaction's commit and its mark on a
second session. The relay sleeps only when a claim finds nothing and nothing is in flight.

Order and fencing are those of ``libs.outbox.publisher``: N and N+1 hold different customers,
and a key's rows reach a claim only after the batch holding its earlier rows has settled;
after any failure both are settled and the next claim starts again from the first pending
row. Behind a batch some of whose rows never reached
the producer (a poison row, a broker error) nothing is claimed until it is settled. Before
claiming from shards taken over on lease expiry, the step fences their previous owners'
producers at the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncpg
import msgspec

from libs.kit.logging import get_logger
from libs.outbox.leases import Ownership, ShardLeases
from libs.outbox.producing import FencingError
from libs.outbox.publisher import BatchPublisher, BatchResult, InFlightBatch
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)


class Step(msgspec.Struct, frozen=True):
    result: BatchResult
    # The claim found fewer rows than a batch and nothing is in flight: sleep until something new arrives.
    caught_up: bool


@dataclass(eq=False)
class BatchPipeline:
    """At most two batches of one relay instance: one settling, one claimed and handed over."""

    publisher: BatchPublisher
    leases: ShardLeases
    settings: RelaySettings
    in_flight: InFlightBatch | None = field(default=None, init=False)
    # Shards the batches in flight claim from: the lease keeper releases none of them.
    busy: frozenset[int] = field(default=frozenset(), init=False)

    def abandon(self) -> None:
        """The session is lost: rows in flight stay pending and are claimed again (duplicates, in order)."""
        if self.in_flight is not None and self.in_flight.handed is not None:
            self.in_flight.handed.abandon()
        self.in_flight = None
        self.busy = frozenset()

    async def step(self, claim_conn: asyncpg.Connection, mark_conn: asyncpg.Connection, stop: bool) -> Step:
        publisher, previous = self.publisher, self.in_flight
        ownership = self.leases.claimable()
        taken_over = dict(self.leases.taken_over)
        # Before the first await: the keeper must not release a shard this claim may read.
        self.busy = _shards(previous) | frozenset(ownership.shards)
        overtaking = previous is not None and previous.stopped
        blocked: set[str] = set()  # keys failed in the previous batch
        settling = asyncio.create_task(publisher.settle(mark_conn, previous, blocked)) if previous is not None else None
        try:
            if taken_over and not stop:
                ownership = await self._fenced(ownership, taken_over)
            rows = [] if stop or overtaking else await publisher.claim(claim_conn, ownership, previous)
            # The other producer's transaction: sent while the previous batch settles.
            following = await publisher.send(rows, ownership) if rows else None
            self.busy = _shards(previous, following)
            result = await settling if settling is not None else BatchResult()
        except BaseException:
            if settling is not None:
                settling.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await settling
            raise
        caught_up = len(rows) < self.settings.batch_size and not overtaking
        if following is not None and not result.clean:
            # Behind a failure: settle it now; the next claim starts again from the first pending row.
            result += await publisher.settle(mark_conn, following, blocked)
            following = None
        self.in_flight = following
        self.busy = _shards(following)
        if following is None or result.clean:
            await publisher.account(result)
        return Step(result, caught_up and following is None)

    async def _fenced(self, ownership: Ownership, taken_over: dict[int, str]) -> Ownership:
        """Fence the previous owners of shards taken over on expiry; leave out the shards whose
        previous owner could not be fenced yet (tried again at the next step)."""
        try:
            await self.publisher.fence(taken_over.values())
        except FencingError as exc:
            log.warning("relay_fencing_failed", shards=sorted(taken_over), error=str(exc))
            keep = [(s, t) for s, t in zip(ownership.shards, ownership.tokens, strict=True) if s not in taken_over]
            return Ownership(ownership.owner, tuple(s for s, _ in keep), tuple(t for _, t in keep))
        for shard, owner in taken_over.items():
            if self.leases.taken_over.get(shard) == owner:
                del self.leases.taken_over[shard]
        return ownership


def _shards(*batches: InFlightBatch | None) -> frozenset[int]:
    return frozenset(shard for batch in batches if batch is not None for shard in batch.ownership.shards)

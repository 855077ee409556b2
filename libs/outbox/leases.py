"""Shard leases: which relay instance may publish which shard, and the fair share of each.

Why a lease table and not a session advisory lock per shard:

* Fencing that does not depend on a session. Every acquisition increments the shard's
  ``token``; the relay's mark and failure updates carry the token they claimed under and
  share-lock the lease row while they write, so once another instance has acquired a
  shard the old owner can change none of its rows (an acquisition skips a shard whose
  mark is in progress and takes it at a later tick). A stale write is refused and
  counted, not silently allowed because an old session happens to live on.
* Take-over time is a setting (``lease_ttl_s``), the same for a killed process and a
  partitioned host; a dead session's advisory locks go only when the server notices,
  which for a lost network path is the TCP keepalive timeout.
* Rebalancing needs the live instances anyway (fair share = ceil(N / live)): a heartbeat
  table gives that, and the same clock (the server's ``now()``) decides lease expiry.
  Ownership is a plain table an operator can read (``SELECT * FROM <schema>.outbox_shards``),
  and nothing pins a session, so it also works through a transaction-mode pooler.
* A hand-over is explicit: release sets the owner to NULL and the others take the shard
  at their next tick.

Exclusivity comes from the lease row: an acquisition only takes a free or expired
shard (``FOR UPDATE SKIP LOCKED``), so at any time at most one instance holds a live
lease on a shard. A shard about to be released is first *drained*: the relay stops
claiming from it and releases it once no batch in flight covers it.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Collection, Iterable

import asyncpg
import msgspec

from libs.kit.logging import get_logger
from libs.outbox.metrics import RelayMetrics
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)


def default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def fair_share(total_shards: int, live_instances: int) -> int:
    """The most shards one instance should hold: ceil(N / live)."""
    return math.ceil(total_shards / max(live_instances, 1))


class LeasePlan(msgspec.Struct, frozen=True):
    release: frozenset[int] = frozenset()
    acquire: int = 0


def plan_rebalance(active: Collection[int], total_shards: int, live_instances: int) -> LeasePlan:
    """What to give back or take to reach the fair share; ``active`` excludes shards already draining.

    The highest-numbered shards go first, so repeated plans agree on what to release.
    """
    target = fair_share(total_shards, live_instances)
    if len(active) > target:
        return LeasePlan(release=frozenset(sorted(active)[target:]))
    return LeasePlan(acquire=target - len(active))


class Ownership(msgspec.Struct, frozen=True):
    """The shards a batch may claim, with the fencing token each was acquired under."""

    owner: str
    shards: tuple[int, ...] = ()
    tokens: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.shards)


class ShardLeases:
    """Membership heartbeat and shard leases of one relay instance (kept across sessions)."""

    def __init__(self, settings: RelaySettings, metrics: RelayMetrics, instance_id: str) -> None:
        self.instance_id = instance_id
        self._settings = settings
        self._metrics = metrics
        self.total_shards = 0
        self.live_instances = 0
        # shard -> fencing token, as last confirmed by the database.
        self.held: dict[int, int] = {}
        # Held shards being handed back: no new batch claims from them.
        self.draining: set[int] = set()
        # Shards taken over on expiry -> their previous owner, whose producer must be fenced
        # at the broker before anything of the shard is claimed.
        self.taken_over: dict[int, str] = {}
        schema = f'"{settings.schema}"'
        self._shards = f"{schema}.outbox_shards"
        self._instances = f"{schema}.outbox_relay_instances"

    def _mine(self, owner: str, condition: str = "TRUE") -> str:
        """This instance's lease rows, locked in shard order (as the relay's marks lock them)."""
        return (
            f"SELECT shard FROM {self._shards} WHERE owner = {owner} AND ({condition}) "  # noqa: S608
            f"ORDER BY shard FOR UPDATE"
        )

    def claimable(self) -> Ownership:
        shards = tuple(sorted(s for s in self.held if s not in self.draining))
        return Ownership(self.instance_id, shards, tuple(self.held[s] for s in shards))

    async def heartbeat(self, conn: asyncpg.Connection) -> int:
        """Record this instance as alive; return how many instances are (this one included)."""
        host = socket.gethostname()[:255]
        if not self.total_shards:  # fixed by the migration: read once
            self.total_shards = await conn.fetchval(f"SELECT count(*) FROM {self._shards}")  # noqa: S608
        others: int = await conn.fetchval(
            f"WITH me AS (INSERT INTO {self._instances} (instance_id, host, pid) VALUES ($1, $2, $3) "  # noqa: S608
            f"ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()), "
            f"forgotten AS (DELETE FROM {self._instances} WHERE heartbeat_at < now() - make_interval(secs => $4 * 10)) "
            f"SELECT count(*) FROM {self._instances} "
            f"WHERE instance_id <> $1 AND heartbeat_at >= now() - make_interval(secs => $4)",
            self.instance_id,
            host,
            os.getpid(),
            self._settings.lease_ttl_s,
        )
        self.live_instances = others + 1
        self._metrics.live_instances.set(self.live_instances)
        return self.live_instances

    async def renew(self, conn: asyncpg.Connection) -> None:
        """Extend every lease this instance holds; notice those another instance took."""
        records = await conn.fetch(
            f"UPDATE {self._shards} s SET expires_at = now() + make_interval(secs => $2) "  # noqa: S608
            f"FROM ({self._mine('$1')}) mine WHERE s.shard = mine.shard RETURNING s.shard, s.token",
            self.instance_id,
            self._settings.lease_ttl_s,
        )
        confirmed = {r["shard"]: r["token"] for r in records}
        lost = sorted(s for s, token in self.held.items() if confirmed.get(s) != token)
        if lost:
            self._metrics.leases_lost.inc(len(lost))
            log.warning("relay_leases_lost", instance_id=self.instance_id, shards=lost)
        self.held = confirmed
        self.draining &= set(confirmed)
        self.taken_over = {s: owner for s, owner in self.taken_over.items() if s in confirmed}
        self._metrics.shards_owned.set(len(self.held))

    async def acquire(self, conn: asyncpg.Connection, count: int) -> list[int]:
        """Take up to ``count`` free or expired shards."""
        records = await conn.fetch(
            f"WITH free AS (SELECT shard, owner FROM {self._shards} "  # noqa: S608
            f"WHERE owner IS NULL OR expires_at < now() ORDER BY shard LIMIT $2 FOR UPDATE SKIP LOCKED) "
            f"UPDATE {self._shards} s SET owner = $1, token = s.token + 1, acquired_at = now(), "
            f"expires_at = now() + make_interval(secs => $3) "
            f"FROM free WHERE s.shard = free.shard RETURNING s.shard, s.token, free.owner AS previous_owner",
            self.instance_id,
            count,
            self._settings.lease_ttl_s,
        )
        for record in records:
            self.held[record["shard"]] = record["token"]
            if record["previous_owner"] and record["previous_owner"] != self.instance_id:
                self.taken_over[record["shard"]] = record["previous_owner"]
        if records:
            self._metrics.leases_acquired.inc(len(records))
            self._metrics.shards_owned.set(len(self.held))
            taken_over = sorted({r["previous_owner"] for r in records if r["previous_owner"]})
            log.info(
                "relay_leases_acquired",
                instance_id=self.instance_id,
                shards=sorted(r["shard"] for r in records),
                expired_owners=taken_over,
            )
        return [r["shard"] for r in records]

    async def release(self, conn: asyncpg.Connection, shards: Iterable[int]) -> list[int]:
        """Hand shards back (they must be drained: no batch in flight claims from them)."""
        return await self._release(conn, sorted(shards))

    async def leave(self, conn: asyncpg.Connection) -> None:
        """Hand every shard back and drop out of the membership: others take over at once."""
        await self._release(conn, None)
        await conn.execute(f"DELETE FROM {self._instances} WHERE instance_id = $1", self.instance_id)  # noqa: S608
        self._metrics.live_instances.set(0)

    async def expire(self, conn: asyncpg.Connection, shards: Iterable[int]) -> list[int]:
        """Hand drained shards over as expired leases (owner and token kept, expiry now), for an
        instance that gave up because it cannot reach the broker. The next instance to acquire one
        takes it over from an expired owner, so it fences this instance's producer at the broker
        first: a Kafka transaction this instance could not end is aborted at once, instead of
        holding back ``read_committed`` consumers of its partitions until it times out. Until
        someone acquires them, this instance's ``renew`` would take them back."""
        wanted = sorted(shards)
        if not wanted:
            return []
        expired = await self._update_mine(conn, "expires_at = now()", "shard = ANY($2::smallint[])", wanted)
        return self._let_go(wanted, expired, "relay_leases_expired")

    async def confirm(self, conn: asyncpg.Connection) -> None:
        """Without renewing anything: keep in ``held`` only the shards whose lease is still live and
        ours under the same token (an instance that gave up lets the leases of busy shards lapse)."""
        records = await conn.fetch(
            f"SELECT shard, token FROM {self._shards} WHERE owner = $1 AND expires_at > now()",  # noqa: S608
            self.instance_id,
        )
        live = {r["shard"]: r["token"] for r in records}
        self.held = {shard: token for shard, token in self.held.items() if live.get(shard) == token}
        self.draining &= set(self.held)
        self._metrics.shards_owned.set(len(self.held))

    async def withdraw(self, conn: asyncpg.Connection) -> None:
        """Drop out of the membership but keep the leases (still being drained): from their next
        tick the other instances count one instance fewer, so their fair share covers our shards.
        The next ``heartbeat`` joins again."""
        await conn.execute(f"DELETE FROM {self._instances} WHERE instance_id = $1", self.instance_id)  # noqa: S608
        self.live_instances = 0
        self._metrics.live_instances.set(0)

    async def _release(self, conn: asyncpg.Connection, shards: list[int] | None) -> list[int]:
        if shards == []:
            return []
        released = await self._update_mine(
            conn, "owner = NULL, expires_at = NULL", "$2::smallint[] IS NULL OR shard = ANY($2::smallint[])", shards
        )
        let_go = shards if shards is not None else list(self.held)
        for shard in let_go:
            self.taken_over.pop(shard, None)
        return self._let_go(let_go, released, "relay_leases_released")

    async def _update_mine(
        self, conn: asyncpg.Connection, assignments: str, condition: str, shards: list[int] | None
    ) -> list[int]:
        """Set ``assignments`` on this instance's lease rows that meet ``condition`` (``$2``: ``shards``);
        the shards updated, sorted."""
        records = await conn.fetch(
            f"UPDATE {self._shards} s SET {assignments} "  # noqa: S608
            f"FROM ({self._mine('$1', condition)}) mine "
            f"WHERE s.shard = mine.shard RETURNING s.shard",
            self.instance_id,
            shards,
        )
        return sorted(r["shard"] for r in records)

    def _let_go(self, shards: Iterable[int], updated: list[int], event: str) -> list[int]:
        """Forget ``shards`` locally; count and log the ``updated`` ones (released or expired)."""
        for shard in shards:
            self.held.pop(shard, None)
            self.draining.discard(shard)
        self._metrics.leases_released.inc(len(updated))
        self._metrics.shards_owned.set(len(self.held))
        log.info(event, instance_id=self.instance_id, shards=updated)
        return updated

    def forget(self) -> None:
        """Local state only: after leaving, the database no longer says we own anything."""
        self.held.clear()
        self.draining.clear()
        self.taken_over.clear()
        self._metrics.shards_owned.set(0)

"""The relay: many instances stream one outbox table to one topic, each publishing the shards it leases.

Every outbox row has a shard (a hash of its aggregate key), so all rows of one customer
live in one shard. An instance holds leases on a fair share of the shards
(``libs.outbox.leases``) and publishes only those (``libs.outbox.publisher``); one
aggregate's rows are therefore published by one instance at a time, in commit order.

One instance runs two tasks on three database sessions:

* the worker: LISTEN for inserts, claim -> produce -> mark batches of the claimable
  shards, and retention between batches. While the backlog fills whole batches, the next
  batch is claimed and handed to the producer while the previous one waits for its
  acknowledgements and is marked on a second session (``libs.outbox.pipeline``);
* the lease keeper, every ``lease_renew_interval_s``: heartbeat, renew the leases,
  rebalance to ceil(N / live instances), refresh the blocked-key report. Renewal does not
  wait for a batch, so a slow broker does not cost the leases.

A shard is handed over only when no batch in flight claims from it: the keeper first
drains it (the worker stops claiming from it) and releases it when the worker's batches
in flight, which may still cover it, have ended. On stop, the worker finishes its batches
(``shutdown_grace_s``), the producer is closed, and every lease is released so other
instances take over at once; a killed instance's leases expire after ``lease_ttl_s``.
A lost database session ends both tasks; the instance reconnects and renews the leases it
still holds (same instance id, same tokens).

An instance that cannot publish gives its shards up (``libs.outbox.health``): after
``give_up_after_failed_batches`` batches in a row failed with broker errors, or
``give_up_after_s`` seconds in which rows waited and none was published, the keeper leaves the
membership, renews and acquires nothing, and drains every shard and hands it over as an expired
lease (the next owner fences this instance's producer at the broker); ``readiness`` says why.
A third task probes the broker every ``broker_probe_interval_s``; once it answers, the instance
joins again, renews what nobody took meanwhile and takes its fair share back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg

from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.logging import get_logger
from libs.outbox.blocked import BlockedKeys
from libs.outbox.health import BrokerHealth, RelayReadiness
from libs.outbox.leases import ShardLeases, default_instance_id, plan_rebalance
from libs.outbox.metrics import RelayMetrics
from libs.outbox.pipeline import BatchPipeline
from libs.outbox.producing import ProducerFactory
from libs.outbox.publisher import BatchPublisher, BatchResult
from libs.outbox.retention import Retention
from libs.outbox.settings import RelaySettings
from libs.outbox.table import notify_channel

__all__ = [
    "BatchResult",
    "BrokerProbe",
    "OutboxRelay",
    "ProducerFactory",
    "RelayMetrics",
    "RelayReadiness",
    "RelaySettings",
]

# Returns when the broker would take the relay's messages again; raises otherwise
# (``libs.kit.kafka.check_topic_writable`` for the relay's topic). Bounded by the relay.
BrokerProbe = Callable[[], Awaitable[None]]

log = get_logger(__name__)

# The server drops a dead relay's sessions within about a minute of a network failure.
_SESSION_SETTINGS = {"tcp_keepalives_idle": "20", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "4"}
_LEAVE_TIMEOUT_S = 5.0


class OutboxRelay:
    """One relay instance: streams its shards of one outbox table until ``stop`` is set."""

    def __init__(
        self,
        dsn: str,
        producer_factory: ProducerFactory,
        settings: RelaySettings,
        metrics: RelayMetrics,
        *,
        broker_probe: BrokerProbe,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self._metrics = metrics
        self._broker_probe = broker_probe
        self.instance_id = settings.instance_id or default_instance_id()
        self._publisher = BatchPublisher(producer_factory, settings, metrics, self.instance_id)
        self._leases = ShardLeases(settings, metrics, self.instance_id)
        self._blocked = BlockedKeys(settings, metrics)
        self._retention = Retention(settings, metrics)
        self._pipeline = BatchPipeline(self._publisher, self._leases, settings)
        self._health = BrokerHealth(settings, metrics)
        self._wakeup = asyncio.Event()
        self._given_up = asyncio.Event()

    @property
    def held_shards(self) -> frozenset[int]:
        return frozenset(self._leases.held)

    @property
    def readiness(self) -> RelayReadiness:
        """Not ready while the instance has given its shards up for want of the broker."""
        return self._health.readiness

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop``; survive database and broker failures; hand the shards back at the end."""
        worker = asyncio.create_task(self._serve(stop), name=f"outbox-relay-{self.instance_id}")
        watcher = asyncio.create_task(self._watch_broker(stop), name=f"outbox-broker-probe-{self.instance_id}")
        try:
            await _first_of(worker, stop)
            self._wakeup.set()
            if not worker.done():
                await asyncio.wait({worker}, timeout=self._settings.shutdown_grace_s)
            if not worker.done():
                log.warning("relay_batch_cancelled_on_stop", grace_s=self._settings.shutdown_grace_s)
        finally:
            for task in (worker, watcher):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # Nothing of ours may reach the broker once another instance owns the shards.
            await self._publisher.close()
            await self._leave()

    async def _serve(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._session(stop)
            except DATABASE_ERRORS as exc:
                self._metrics.db_session_errors.inc()
                log.warning("relay_db_connection_lost", instance_id=self.instance_id, error=repr(exc))
            except Exception:  # the relay must outlive any one failure
                self._metrics.db_session_errors.inc()
                log.exception("relay_unexpected_error", instance_id=self.instance_id)
            await _wait(stop, self._settings.reconnect_delay_s)

    async def _session(self, stop: asyncio.Event) -> None:
        """Three sessions (worker, marks, lease keeper) that live and die together."""
        connections: list[asyncpg.Connection] = []
        try:
            for role in ("worker", "marks", "leases"):
                connections.append(await self._connect(role))  # noqa: PERF401 - closed on failure
        except BaseException:
            for conn in connections:
                await _close_connection(conn)
            raise
        work, mark_conn, lease_conn = connections
        keeper: asyncio.Task[None] | None = None
        try:
            for conn in connections:
                conn.add_termination_listener(self._on_notify)
            self._health.new_session()
            await self._keep_tick(lease_conn)  # renew what we still hold before claiming anything
            keeper = asyncio.create_task(self._keep(lease_conn, stop), name=f"outbox-leases-{self.instance_id}")
            keeper.add_done_callback(lambda _: self._wakeup.set())
            await work.add_listener(notify_channel(self._settings.schema), self._on_notify)
            await self._publisher.warm_up()
            log.info("relay_session_started", instance_id=self.instance_id, shards=sorted(self._leases.held))
            await self._relay_loop(work, mark_conn, stop, keeper)
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keeper
            for conn in connections:
                await _close_connection(conn)

    async def _connect(self, role: str) -> asyncpg.Connection:
        application_name = f"outbox-relay:{self._settings.schema}:{role}:{self.instance_id}"[:63]
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, server_settings={**_SESSION_SETTINGS, "application_name": application_name}
        )
        return conn

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def _relay_loop(
        self, conn: asyncpg.Connection, mark_conn: asyncpg.Connection, stop: asyncio.Event, keeper: asyncio.Task[None]
    ) -> None:
        pipeline = self._pipeline
        try:
            while not stop.is_set() or pipeline.in_flight is not None:
                if keeper.done():
                    keeper.result()  # raises what ended it
                    msg = "lease keeper stopped"
                    raise asyncpg.InterfaceError(msg)
                self._wakeup.clear()
                step = await pipeline.step(conn, mark_conn, stop=stop.is_set())
                waiting = pipeline.in_flight is not None or not step.result.clean
                if self._health.observe(step.result, waiting=waiting):
                    self._gave_up()
                if self._retention.due():
                    await self._retention.run(conn, self._leases.claimable().shards)
                if step.result.failed:
                    await _wait(stop, self._settings.retry_delay_s)
                elif step.caught_up and not stop.is_set():
                    # Sleep until a NOTIFY, new shards, the poll interval, stop or a lost session.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout=self._settings.poll_interval_s)
                if conn.is_closed() or mark_conn.is_closed():
                    msg = "relay connection closed"
                    raise asyncpg.InterfaceError(msg)
        finally:
            pipeline.abandon()
            self._metrics.in_flight.set(0)

    async def _keep(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait(stop, self._settings.lease_renew_interval_s)
            if stop.is_set():
                return
            await self._keep_tick(conn)

    async def _keep_tick(self, conn: asyncpg.Connection) -> None:
        if self._health.check():  # a batch may hang on the broker: do not wait for its result
            self._gave_up()
        if not self._health.healthy:
            await self._stand_down(conn)
            return
        leases = self._leases
        live = await leases.heartbeat(conn)
        await leases.renew(conn)
        active = [s for s in leases.held if s not in leases.draining]
        plan = plan_rebalance(active, leases.total_shards, live)
        leases.draining |= plan.release
        if releasable := leases.draining - self._pipeline.busy:
            await leases.release(conn, releasable)
        if plan.acquire and await leases.acquire(conn, plan.acquire):
            self._wakeup.set()
        await self._blocked.refresh(conn, leases.held)

    async def _stand_down(self, conn: asyncpg.Connection) -> None:
        """Given up: out of the membership, renewing nothing, every shard drained and handed over
        once no batch covers it. Handed over as an expired lease, so the next owner fences this
        instance's producer at the broker (``ShardLeases.expire``); a shard whose batch still hangs
        on the broker expires by itself within ``lease_ttl_s`` and is fenced alike."""
        leases = self._leases
        await leases.withdraw(conn)
        await leases.confirm(conn)
        leases.draining |= set(leases.held)
        if releasable := leases.draining - self._pipeline.busy:
            await leases.expire(conn, releasable)
        await self._blocked.refresh(conn, leases.held)

    def _gave_up(self) -> None:
        # The worker claims from none of them from its next step; the keeper hands them over.
        self._leases.draining |= set(self._leases.held)
        self._given_up.set()
        self._wakeup.set()
        log.warning(
            "relay_gave_up_shards",
            instance_id=self.instance_id,
            reason=self._health.reason,
            shards=sorted(self._leases.held),
            failed_batches=self._health.failed_batches,
            probe_interval_s=self._health.probe_interval_s,
        )

    async def _watch_broker(self, stop: asyncio.Event) -> None:
        """While given up, probe the broker (bounded); when it answers, become ready and rejoin."""
        while not stop.is_set():
            if self._health.healthy:
                await _first_set(stop, self._given_up)
                continue
            await _wait(stop, self._health.probe_interval_s)
            if stop.is_set():
                return
            try:
                await asyncio.wait_for(self._broker_probe(), timeout=self._settings.broker_probe_timeout_s)
            except Exception as exc:  # noqa: BLE001 - any failure or timeout: the broker is still away
                self._metrics.broker_probes.labels(result="failed").inc()
                log.debug("relay_broker_probe_failed", instance_id=self.instance_id, error=repr(exc))
                continue
            self._metrics.broker_probes.labels(result="ok").inc()
            down_s = self._health.recovered()
            self._given_up.clear()
            log.info("relay_broker_answers", instance_id=self.instance_id, gave_up_for_s=round(down_s, 1))
            self._wakeup.set()

    async def _leave(self) -> None:
        """Release every lease on a fresh session (bounded): the others need not wait for expiry."""
        try:
            conn = await asyncio.wait_for(self._connect("leave"), timeout=_LEAVE_TIMEOUT_S)
            try:
                await asyncio.wait_for(self._leases.leave(conn), timeout=_LEAVE_TIMEOUT_S)
            finally:
                await _close_connection(conn)
        except DATABASE_ERRORS as exc:
            log.warning(
                "relay_leave_failed",
                instance_id=self.instance_id,
                error=repr(exc),
                leases_expire_in_s=self._settings.lease_ttl_s,
            )
        finally:
            self._leases.forget()
        log.info("relay_left", instance_id=self.instance_id)


async def _first_of(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()


async def _first_set(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _close_connection(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=2)
    except Exception:  # noqa: BLE001 - a dead session: drop it
        conn.terminate()

"""The relay process: outbox -> Kafka until SIGTERM/SIGINT; run as many as you like (shard leases)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from aiohttp import web
from prometheus_client import CollectorRegistry

from libs.kit.db import asyncpg_dsn
from libs.kit.kafka import KafkaConfigError, make_producer
from libs.kit.kafka_probe import check_topic_writable
from libs.kit.kafka_topics import prepare_topics
from libs.kit.logging import configure_logging, get_logger
from libs.kit.ops_server import Status, StatusSource, broker_check, database_check, start_ops_server
from libs.kit.telemetry import configure_tracing
from libs.outbox.backlog import BacklogMetrics, watch_backlog
from libs.outbox.relay import OutboxRelay, RelayMetrics
from services.profile.settings import ProfileSettings

log = get_logger(__name__)


async def run_relay(settings: ProfileSettings) -> None:
    configure_logging("outbox-relay", settings.log_level)
    provider = configure_tracing("outbox-relay")
    registry = CollectorRegistry()
    dsn = asyncpg_dsn(settings.database.url)
    relay = OutboxRelay(
        dsn,
        lambda transactional_id: make_producer(settings.kafka, transactional_id),
        settings.relay,
        RelayMetrics(registry),
        broker_probe=lambda: check_topic_writable(settings.kafka, settings.relay.topic),
    )
    ops: web.AppRunner | None = None
    if settings.relay_metrics_port:
        checks = {"database": database_check(dsn), "broker": broker_check(settings.kafka.bootstrap_servers)}
        ops = await start_ops_server(
            settings.relay_metrics_host, settings.relay_metrics_port, registry, checks, relay_statuses(relay)
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _wait_for_topic(settings, stop)
    except KafkaConfigError as exc:
        log.error("relay_refused_to_start", topic=settings.relay.topic, error=str(exc))  # noqa: TRY400 - no traceback
        if ops is not None:
            await ops.cleanup()
        provider.shutdown()
        raise
    log.info(
        "relay_started",
        topic=settings.relay.topic,
        schema=settings.relay.schema,
        instance_id=relay.instance_id,
        lease_ttl_s=settings.relay.lease_ttl_s,
    )
    backlog = asyncio.create_task(
        watch_backlog(dsn, settings.relay.schema, BacklogMetrics(registry), settings.backlog_refresh_s, stop)
    )
    try:
        # Owns its producer and its shard leases: hands both back when stop is set.
        await relay.run(stop)
    finally:
        stop.set()
        await backlog
        if ops is not None:
            await ops.cleanup()
        provider.shutdown()
        log.info("relay_stopped")


def relay_statuses(relay: OutboxRelay) -> dict[str, StatusSource]:
    """``/ready``'s view of the relay itself: ``publishing`` is false while it has given its shards
    up for want of the broker (another instance publishes them meanwhile)."""

    def publishing() -> Status:
        readiness = relay.readiness
        return Status(readiness.ready, readiness.reason)

    return {"publishing": publishing}


async def _wait_for_topic(settings: ProfileSettings, stop: asyncio.Event) -> None:
    """The broker may start after us: retry until the topic exists (created with the settings if missing).

    A topic with fewer replicas or a lower ``min.insync.replicas`` than the settings, or a broker that
    refuses our credentials or certificate, is a ``KafkaConfigError``: the relay does not start.
    """
    delay = 0.2
    while not stop.is_set():
        try:
            await prepare_topics(settings.kafka, [settings.relay.topic])
        except KafkaConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - any broker error: wait and retry
            log.warning("broker_unavailable", error=repr(exc), retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 5.0)
        else:
            return

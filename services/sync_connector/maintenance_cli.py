"""``python -m services.sync_connector maintenance``: the daily retention prune (k8s CronJob, make run's timer).

A system job, not an admin's action: it needs the sync database (``CONNECTOR_DB_*``) and no token.
Prints the report as JSON on stdout; the log line ``retention_pruned`` goes to stderr, and the
run's row in ``sync.maintenance_runs`` feeds every connector's gauges.
"""

from __future__ import annotations

import asyncio
import os

import click
import msgspec
from prometheus_client import CollectorRegistry

from libs.kit.db import make_engine
from libs.kit.logging import configure_logging
from services.sync_connector.retention import PruneReport, RetentionMetrics, RetentionPrune
from services.sync_connector.settings import ConnectorSettings, settings_from_env

SERVICE_NAME = "sync-connector-maintenance"
DAY_S = 86400.0


async def prune(settings: ConnectorSettings, registry: CollectorRegistry | None = None) -> PruneReport:
    engine = make_engine(settings.database)
    try:
        return await RetentionPrune(
            engine,
            older_than_s=settings.retention_days * DAY_S,
            batch_size=settings.retention_batch_size,
            metrics=RetentionMetrics(registry or CollectorRegistry()),
        ).run()
    finally:
        await engine.dispose()


@click.command()
def maintenance() -> None:
    """Prune terminal sync records (with attempts and dead letters), finished notifications and admin
    actions older than CONNECTOR_RETENTION_DAYS (30), in batches of CONNECTOR_RETENTION_BATCH_SIZE."""
    settings = settings_from_env(os.environ)
    configure_logging(SERVICE_NAME, settings.log_level)
    report = asyncio.run(prune(settings))
    click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())

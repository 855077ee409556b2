"""``python -m services.sync_connector maintenance``: the daily retention prune (k8s CronJob, make run's timer).

A system job, not an admin's action: it needs the sync database (``CONNECTOR_DB_*``) and no token.
Prints the report as JSON on stdout; the log line ``retention_pruned`` and the progress (the rows
removed so far, on a terminal) go to stderr, and the run's row in ``sync.maintenance_runs`` feeds
every connector's gauges.
"""

from __future__ import annotations

import asyncio
import os

import click
import msgspec
from prometheus_client import CollectorRegistry

from libs.kit.db import make_engine
from libs.kit.logging import configure_logging
from libs.kit.progress import Progress, no_progress, terminal_progress
from services.sync_connector.retention import PruneReport, RetentionMetrics, RetentionPrune
from services.sync_connector.settings import ConnectorSettings, settings_from_env

SERVICE_NAME = "sync-connector-maintenance"
DAY_S = 86400.0


async def prune(
    settings: ConnectorSettings, registry: CollectorRegistry | None = None, progress: Progress = no_progress
) -> PruneReport:
    engine = make_engine(settings.database)
    try:
        return await RetentionPrune(
            engine,
            older_than_s=settings.retention_days * DAY_S,
            batch_size=settings.retention_batch_size,
            metrics=RetentionMetrics(registry or CollectorRegistry()),
            progress=progress,
        ).run()
    finally:
        await engine.dispose()


@click.command()
def maintenance() -> None:
    """Prune terminal sync records (with attempts and dead letters), finished notifications and admin
    actions older than CONNECTOR_RETENTION_DAYS (30), in batches of CONNECTOR_RETENTION_BATCH_SIZE."""
    settings = settings_from_env(os.environ)
    configure_logging(SERVICE_NAME, settings.log_level)
    with terminal_progress(f"pruning rows older than {settings.retention_days:g} days") as progress:
        report = asyncio.run(prune(settings, progress=progress))
    click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())

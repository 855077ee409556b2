"""``python -m services.sync_connector serve|migrate|maintenance|sync ...|notify ...``."""

from __future__ import annotations

import os

import click
import uvloop

from services.sync_connector.cli import notify, sync
from services.sync_connector.maintenance_cli import maintenance
from services.sync_connector.settings import settings_from_env


@click.group()
def cli() -> None:
    """Sync-connector commands (settings come from CONNECTOR_* environment variables)."""


@cli.command()
def serve() -> None:
    """Consume profile events and sync every external system; HTTP API on CONNECTOR_HTTP_PORT."""
    from libs.kit.kafka import KafkaConfigError  # noqa: PLC0415
    from services.sync_connector.runtime import run_connector  # noqa: PLC0415

    try:
        # uvloop: the same asyncio API with a faster event loop (uvicorn picks it up by itself).
        uvloop.run(run_connector(settings_from_env(os.environ)))
    except KafkaConfigError as exc:  # a dead-letter topic or the broker does not fit the settings: exit 1, say why
        raise click.ClickException(f"the sync-connector refuses to start: {exc}") from exc


@cli.command()
def migrate() -> None:
    """Apply the sync schema migrations."""
    from migrations.runner import upgrade  # noqa: PLC0415

    upgrade(settings_from_env(os.environ).database.url, "sync")


cli.add_command(sync)
cli.add_command(notify)
cli.add_command(maintenance)

if __name__ == "__main__":
    cli()

"""``python -m services.profile serve|relay|migrate|outbox``."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import click
import uvloop

from services.profile.access.keys_cli import keys
from services.profile.access.token_cli import token
from services.profile.backups.cli import LEDGER_COMMANDS
from services.profile.outbox_admin.cli import outbox
from services.profile.settings import ProfileSettings, settings_from_env


@click.group()
def cli() -> None:
    """Profile service commands (settings come from PROFILE_* environment variables)."""


@cli.command()
def serve() -> None:
    """Run the HTTP API."""
    import uvicorn  # noqa: PLC0415

    from services.profile.app import create_app  # noqa: PLC0415

    settings = settings_from_env(os.environ)
    workers = settings.http.workers
    if workers <= 1:
        uvicorn.run(create_app(settings), **_uvicorn_options(settings))
        return
    # Fresh for each start: samples left by an earlier run's workers would be added to this one's.
    metrics_dir = tempfile.mkdtemp(prefix="profile-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by prometheus_client in each worker
    try:
        uvicorn.run(
            "services.profile.app:app_from_env",
            factory=True,
            workers=workers,
            **_uvicorn_options(settings),
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _uvicorn_options(settings: ProfileSettings) -> dict[str, Any]:
    return {
        "host": settings.http.host,
        "port": settings.http.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }


@cli.command()
def relay() -> None:
    """Run the outbox relay."""
    from libs.kit.kafka import KafkaConfigError  # noqa: PLC0415
    from services.profile.relay import run_relay  # noqa: PLC0415

    try:
        # uvloop: the same asyncio API with a faster event loop (uvicorn picks it up by itself).
        uvloop.run(run_relay(settings_from_env(os.environ)))
    except KafkaConfigError as exc:  # a topic or the broker does not fit the settings: exit 1, say why
        raise click.ClickException(f"the relay refuses to start: {exc}") from exc


@cli.command()
def migrate() -> None:
    """Apply the profile schema migrations."""
    from migrations.runner import upgrade  # noqa: PLC0415

    settings = settings_from_env(os.environ)
    # The keys seal contact data that rows already hold (profile_0004); not needed on an empty ledger.
    upgrade(settings.database.url, "profile", attributes={"profile_crypto": settings.crypto})


cli.add_command(outbox)
cli.add_command(token)
cli.add_command(keys)
for _command in LEDGER_COMMANDS:
    cli.add_command(_command)

if __name__ == "__main__":
    cli()

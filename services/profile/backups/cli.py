"""Ledger commands: ``maintenance`` (a daily cron job), ``backup`` and ``restore`` for operators.

    python -m services.profile maintenance                 # every task
    python -m services.profile maintenance --task purge    # one task (repeatable option)
    python -m services.profile backup --label "before migration"
    python -m services.profile restore BK-... [--customer-id C1] [--dry-run]

Each prints its report as JSON on stdout and exits non-zero when something failed; a restore and the
maintenance also show how far they are on stderr when it is a terminal.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
import msgspec

from libs.kit.crypto import CryptoConfigError
from libs.kit.errors import AppError
from libs.kit.logging import configure_logging
from libs.kit.progress import terminal_progress
from services.profile.backups.maintenance import MAINTENANCE_ACTOR, MaintenanceTask
from services.profile.bootstrap import ProfileServices, SqlAdapters, open_services
from services.profile.domain.restore import BackupKind
from services.profile.settings import settings_from_env
from services.profile.shared.results import Actor

T = TypeVar("T")


def _run(work: Callable[[ProfileServices[SqlAdapters]], Awaitable[T]]) -> T:
    settings = settings_from_env(os.environ)
    configure_logging(f"{settings.service_name}-cli", settings.log_level)

    async def main() -> T:
        async with open_services(settings) as ledger:
            return await work(ledger)

    try:
        return asyncio.run(main())
    except AppError as exc:
        click.echo(msgspec.json.encode({"error": exc.code, "detail": exc.detail}).decode(), err=True)
        sys.exit(1)
    except CryptoConfigError as exc:
        click.echo(msgspec.json.encode({"error": "CRYPTO_CONFIG", "detail": str(exc)}).decode(), err=True)
        sys.exit(2)


def _operator(actor_id: str) -> Actor:
    return Actor(actor_id=actor_id, user_agent="services.profile cli")


def _print(report: msgspec.Struct) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())


@click.command()
@click.option(
    "--task",
    "tasks",
    multiple=True,
    type=click.Choice([t.value for t in MaintenanceTask]),
    help="Run only these tasks (default: all).",
)
@click.option(
    "--every",
    "every_s",
    type=click.FloatRange(min=1),
    default=None,
    help="Run again every this many seconds, until stopped (compose's daily loop; a CronJob in Kubernetes).",
)
def maintenance(tasks: tuple[str, ...], every_s: float | None) -> None:
    """Partitions ahead, recycle-bin purge (after a backup point), daily backup, backup retention, expired
    idempotency keys."""
    chosen = [MaintenanceTask(t) for t in tasks] or list(MaintenanceTask)
    while True:
        with terminal_progress("ledger maintenance: rows purged and pruned") as progress:
            report = _run(lambda ledger: ledger.maintenance.run(chosen, progress))
        _print(report)
        if every_s is None:
            break
        time.sleep(every_s)  # a failed task is logged and counted (ledger_maintenance_tasks_total), then retried
    if report.failed_tasks:
        sys.exit(1)


@click.command()
@click.option("--label", default=None, help="A note shown with the backup point.")
@click.option("--actor", "actor_id", default=MAINTENANCE_ACTOR.actor_id, help="Recorded in the operation log.")
def backup(label: str | None, actor_id: str) -> None:
    """Take a backup point of the whole ledger now."""
    _print(_run(lambda ledger: ledger.backups.create(BackupKind.MANUAL, label, _operator(actor_id))))


@click.command()
@click.argument("backup_id")
@click.option("--customer-id", default=None, help="Restore only this customer.")
@click.option("--dry-run", is_flag=True, help="Report the differences, write nothing.")
@click.option("--actor", "actor_id", default=MAINTENANCE_ACTOR.actor_id, help="Recorded in the operation log.")
def restore(backup_id: str, customer_id: str | None, dry_run: bool, actor_id: str) -> None:
    """Restore the ledger (or one customer) to a backup point."""
    label = f"{'comparing' if dry_run else 'restoring'} customers that differ from {backup_id}"
    with terminal_progress(label) as progress:
        report = _run(
            lambda ledger: ledger.restores.restore(backup_id, customer_id, dry_run, _operator(actor_id), progress)
        )
    _print(report)


LEDGER_COMMANDS = (maintenance, backup, restore)

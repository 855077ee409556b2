"""``python -m services.sync_connector notify list|show|resend``: the notification admin from a shell.

Same use cases as ``/v1/notifications`` on the connector's API, audited the same
way in ``sync.admin_actions`` (channel ``cli``), with the same token rule as ``sync``:
``CONNECTOR_ADMIN_TOKEN`` of a viewer to read, of an admin to re-send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.tokens import Role
from services.sync_connector.admin import DEFAULT_PAGE_SIZE
from services.sync_connector.cli import cli_actor, print_json, run_admin
from services.sync_connector.notify.admin import NotificationAdmin
from services.sync_connector.notify.admin_store import NotificationFilter
from services.sync_connector.settings import ConnectorSettings

T = TypeVar("T")


def _admin(engine: AsyncEngine, settings: ConnectorSettings) -> NotificationAdmin:
    return NotificationAdmin(
        engine, attempt_budget=settings.notify.max_attempts, bulk_limit=settings.admin_bulk_retry_limit
    )


def _run(use_case: Callable[[NotificationAdmin], Awaitable[T]]) -> T:
    return run_admin(_admin, use_case)


@click.group()
def notify() -> None:
    """Inspect and re-send customer notifications (e-mail, SMS)."""


@notify.command("list")
@click.option("--customer-id")
@click.option("--channel", help="email or sms")
@click.option("--status", help="pending, retrying, sent, failed, skipped_no_contact or skipped_stale")
@click.option("--event-id")
@click.option("--limit", type=int, default=DEFAULT_PAGE_SIZE, show_default=True)
@click.option("--cursor", help="nextCursor of the previous page")
def list_notifications(
    *,
    customer_id: str | None,
    channel: str | None,
    status: str | None,
    event_id: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """Notification records, newest first, as JSON ({items, nextCursor})."""
    where = NotificationFilter(customer_id=customer_id, channel=channel, status=status, event_id=event_id)
    print_json(_run(lambda admin: admin.page(where, cursor=cursor, limit=limit)))


@notify.command("show")
@click.argument("notification_id", type=int)
def show(notification_id: int) -> None:
    """One record with the event it tells about and every attempt."""
    print_json(_run(lambda admin: admin.get(notification_id)))


@notify.command("resend")
@click.option("--id", "notification_id", type=int, help="re-send this record")
@click.option("--channel", help="re-send every record of this channel (email, sms) in --status")
@click.option("--status", default="failed", show_default=True, help="with --channel: failed or skipped_*")
@click.option("--customer-id", help="with --channel: only this customer's records")
def resend(*, notification_id: int | None, channel: str | None, status: str, customer_id: str | None) -> None:
    """Reset records for another send; a running connector sends them within its poll interval.

    Needs an ADMIN token in CONNECTOR_ADMIN_TOKEN; its subject is recorded as the actor.
    """
    if (notification_id is None) == (channel is None):
        raise click.UsageError("give exactly one of --id or --channel")
    who = cli_actor(Role.ADMIN)
    if notification_id is not None:
        print_json(_run(lambda admin: admin.resend(notification_id, who)))
    else:
        assert channel is not None
        print_json(_run(lambda admin: admin.resend_all(channel, who, status=status, customer_id=customer_id)))

"""``python -m services.sync_connector sync list|status|retry`` and ``notify list|show|resend`` from a shell.

Talks to the sync database directly (``CONNECTOR_DB_*``), through the same use cases as the
HTTP API (``/v1/sync-records``, ``/v1/notifications``), and is audited the same way in
``sync.admin_actions`` (channel ``cli``). Like the API it needs a bearer token
(``CONNECTOR_ADMIN_TOKEN``, verified with ``CONNECTOR_AUTH_PUBLIC_KEYS``): VIEWER to read,
ADMIN to retry or re-send; the token's subject is the actor in the audit log.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db import make_engine
from libs.kit.errors import AppError
from libs.kit.logging import configure_logging
from libs.kit.tokens import Forbidden, Role, TokenVerifier, effective_roles
from services.sync_connector.admin import DEFAULT_PAGE_SIZE, SYNC_KIND, AdminKind, RecordAdmin, SyncAdmin
from services.sync_connector.admin_store import Actor
from services.sync_connector.notify.admin import NOTIFICATION_KIND, NotificationAdmin
from services.sync_connector.settings import ADMIN_TOKEN_ENV, ConnectorSettings, settings_from_env

T = TypeVar("T")
AdminT = TypeVar("AdminT")
CLI_USER_AGENT = "sync-connector-cli"
CLI_SERVICE_NAME = "sync-connector-cli"


def _fail(error: AppError) -> NoReturn:
    click.echo(msgspec.json.encode({"status": error.status, "code": error.code, "detail": error.detail}), err=True)
    raise SystemExit(1) from error


def cli_actor(role: Role) -> Actor:
    """Who runs this command, from the verified ``CONNECTOR_ADMIN_TOKEN``; exits 1 without the role."""
    settings = settings_from_env(os.environ)
    try:
        caller = TokenVerifier(settings.auth).verify(os.environ.get(ADMIN_TOKEN_ENV, "").strip())
        if role not in effective_roles(caller.roles):
            raise Forbidden(f"this command needs the role {role.value}")
    except AppError as error:
        _fail(error)
    return Actor(caller.subject, "cli", user_agent=CLI_USER_AGENT)


def run_admin(
    build: Callable[[AsyncEngine, ConnectorSettings], AdminT], use_case: Callable[[AdminT], Awaitable[T]]
) -> T:
    """Run one admin use case against the configured database; typed errors exit 1 with their problem."""
    cli_actor(Role.VIEWER)
    settings = settings_from_env(os.environ)
    configure_logging(CLI_SERVICE_NAME, settings.log_level)  # JSON lines on stderr; stdout is the result

    async def main() -> T:
        engine = make_engine(settings.database)
        try:
            return await use_case(build(engine, settings))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except AppError as error:
        _fail(error)


def print_json(value: object) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))


def _choice(values: Sequence[str]) -> click.Choice[str]:
    """The values an option takes, listed in --help and checked by click before any work."""
    return click.Choice(values)


def add_record_commands(
    group: click.Group,
    kind: AdminKind[Any, Any],
    admin: Callable[[AsyncEngine, ConnectorSettings], RecordAdmin[Any, Any]],
    *,
    option: str,
    command: str,
    words: str,
    redrive_help: str,
) -> None:
    """``list`` and the re-drive ``command`` of one kind of record, whose target has the option ``option``
    (``--system``, ``--channel``); ``words`` is how help texts say the re-drive (``retry``, ``re-send``)."""
    targets = [str(target) for target in kind.targets]
    statuses = [str(status) for status in kind.statuses]

    @group.command("list", help=f"{kind.noun.capitalize()}s, newest first, as JSON ({{items, nextCursor}}).")
    @click.option("--customer-id")
    @click.option(option, "target", type=_choice(targets))
    @click.option("--status", type=_choice(statuses))
    @click.option("--event-id")
    @click.option("--limit", type=int, default=DEFAULT_PAGE_SIZE, show_default=True)
    @click.option("--cursor", help="nextCursor of the previous page")
    def list_records(
        *,
        customer_id: str | None,
        target: str | None,
        status: str | None,
        event_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> None:
        fields = {"customer_id": customer_id, kind.table.target: target, "status": status, "event_id": event_id}
        where = kind.table.filter(**fields)
        print_json(run_admin(admin, lambda records: records.list_records(where, cursor=cursor, limit=limit)))

    redrivable = sorted(str(status) for status in kind.redrivable)

    @group.command(command, help=redrive_help)
    @click.option("--id", "record_id", type=int, help=f"{words} this record")
    @click.option(
        option, "target", type=_choice(targets), help=f"{words} every record of this {option[2:]} in --status"
    )
    @click.option("--status", type=_choice(redrivable), default="failed", show_default=True, help=f"with {option}")
    @click.option("--customer-id", help=f"with {option}: only this customer's records")
    def redrive(*, record_id: int | None, target: str | None, status: str, customer_id: str | None) -> None:
        if (record_id is None) == (target is None):
            raise click.UsageError(f"give exactly one of --id or {option}")
        who = cli_actor(Role.ADMIN)
        if record_id is not None:
            print_json(run_admin(admin, lambda records: records.redrive(record_id, who)))
        else:
            assert target is not None
            print_json(
                run_admin(
                    admin,
                    lambda records: records.redrive_many(target, who, status=status, customer_id=customer_id),
                )
            )


_NEEDS_ADMIN = "Needs an ADMIN token in CONNECTOR_ADMIN_TOKEN; its subject is recorded as the actor."


def _sync_admin(engine: AsyncEngine, settings: ConnectorSettings) -> SyncAdmin:
    return SyncAdmin(engine, retry_budget=settings.max_retry_count, bulk_limit=settings.admin_bulk_retry_limit)


def _notification_admin(engine: AsyncEngine, settings: ConnectorSettings) -> NotificationAdmin:
    return NotificationAdmin(
        engine, attempt_budget=settings.notify.max_attempts, bulk_limit=settings.admin_bulk_retry_limit
    )


@click.group()
def sync() -> None:
    """Inspect and re-drive external sync records."""


add_record_commands(
    sync,
    SYNC_KIND,
    _sync_admin,
    option="--system",
    command="retry",
    words="retry",
    redrive_help="Reset failed records to retrying; the connector delivers them again with the same "
    f"Idempotency-Key.\n\n{_NEEDS_ADMIN}",
)


@sync.command("status")
@click.argument("customer_id")
def status(customer_id: str) -> None:
    """The latest sync status of a customer at every system."""
    print_json(run_admin(_sync_admin, lambda admin: admin.sync_status(customer_id)))


@click.group()
def notify() -> None:
    """Inspect and re-send customer notifications (e-mail, SMS)."""


add_record_commands(
    notify,
    NOTIFICATION_KIND,
    _notification_admin,
    option="--channel",
    command="resend",
    words="re-send",
    redrive_help="Reset records for another send; a running connector sends them within its poll interval."
    f"\n\n{_NEEDS_ADMIN}",
)


@notify.command("show")
@click.argument("notification_id", type=int)
def show(notification_id: int) -> None:
    """One record with the event it tells about and every attempt."""
    print_json(run_admin(_notification_admin, lambda admin: admin.get(notification_id)))

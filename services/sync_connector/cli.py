"""``python -m services.sync_connector sync list|status|retry``: the admin use cases from a shell.

Talks to the sync database directly (``CONNECTOR_DB_*``), through the same use
cases as the HTTP API, and is audited the same way (channel ``cli``). Like the API it
needs a bearer token (``CONNECTOR_ADMIN_TOKEN``, verified with ``CONNECTOR_AUTH_PUBLIC_KEYS``):
VIEWER to read, ADMIN to retry; the token's subject is the actor in the audit log.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import click
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db import make_engine
from libs.kit.errors import AppError
from libs.kit.logging import configure_logging
from libs.kit.tokens import Forbidden, Role, TokenVerifier, effective_roles
from services.sync_connector.admin import DEFAULT_PAGE_SIZE, Actor, SyncAdmin
from services.sync_connector.admin_store import RecordFilter
from services.sync_connector.settings import ConnectorSettings, settings_from_env

T = TypeVar("T")
AdminT = TypeVar("AdminT")
CLI_USER_AGENT = "sync-connector-cli"
CLI_SERVICE_NAME = "sync-connector-cli"
TOKEN_ENV = "CONNECTOR_ADMIN_TOKEN"  # noqa: S105 - the name of the variable, not a secret


def _fail(error: AppError) -> NoReturn:
    click.echo(msgspec.json.encode({"status": error.status, "code": error.code, "detail": error.detail}), err=True)
    raise SystemExit(1) from error


def cli_actor(role: Role) -> Actor:
    """Who runs this command, from the verified ``CONNECTOR_ADMIN_TOKEN``; exits 1 without the role."""
    settings = settings_from_env(os.environ)
    try:
        caller = TokenVerifier(settings.auth).verify(os.environ.get(TOKEN_ENV, "").strip())
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


def _run(use_case: Callable[[SyncAdmin], Awaitable[T]]) -> T:
    return run_admin(
        lambda engine, settings: SyncAdmin(
            engine, retry_budget=settings.max_retry_count, bulk_limit=settings.admin_bulk_retry_limit
        ),
        use_case,
    )


def print_json(value: object) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))


@click.group()
def sync() -> None:
    """Inspect and re-drive external sync records."""


@sync.command("list")
@click.option("--customer-id")
@click.option("--system", "system_code", help="CRM, CMS or CSS")
@click.option("--status", help="pending, retrying, success, failed or superseded")
@click.option("--event-id")
@click.option("--limit", type=int, default=DEFAULT_PAGE_SIZE, show_default=True)
@click.option("--cursor", help="nextCursor of the previous page")
def list_records(
    *,
    customer_id: str | None,
    system_code: str | None,
    status: str | None,
    event_id: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """Sync records, newest first, as JSON ({items, nextCursor})."""
    where = RecordFilter(customer_id=customer_id, system_code=system_code, status=status, event_id=event_id)
    print_json(_run(lambda admin: admin.list_records(where, cursor=cursor, limit=limit)))


@sync.command("status")
@click.argument("customer_id")
def status(customer_id: str) -> None:
    """The latest sync status of a customer at every system."""
    print_json(_run(lambda admin: admin.sync_status(customer_id)))


@sync.command("retry")
@click.option("--id", "record_id", type=int, help="retry this failed record")
@click.option("--system", "system_code", help="retry every failed record of this system (CRM, CMS, CSS)")
@click.option("--status", default="failed", show_default=True, help="with --system: only 'failed'")
@click.option("--customer-id", help="with --system: only this customer's records")
def retry(*, record_id: int | None, system_code: str | None, status: str, customer_id: str | None) -> None:
    """Reset failed records to retrying; the connector delivers them again with the same Idempotency-Key.

    Needs an ADMIN token in CONNECTOR_ADMIN_TOKEN; its subject is recorded as the actor.
    """
    if (record_id is None) == (system_code is None):
        raise click.UsageError("give exactly one of --id or --system")
    who = cli_actor(Role.ADMIN)
    if record_id is not None:
        print_json(_run(lambda admin: admin.retry_record(record_id, who)))
    else:
        assert system_code is not None
        print_json(_run(lambda admin: admin.retry_failed(system_code, who, status=status, customer_id=customer_id)))

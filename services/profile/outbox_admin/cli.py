"""``python -m services.profile outbox list|show|redrive``: the outbox admin for operators.

Re-drives are written to the audit log with actor ``cli:<os user>``, like the HTTP API's.
Output is JSON, shaped like the admin API's. Exit codes: 0 done, 1 not found or database
trouble, 2 bad arguments or filter. The heavy imports wait for a command to run, so the
other ``services.profile`` commands do not pay for them.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from libs.outbox.table import OutboxStatus

if TYPE_CHECKING:
    from libs.outbox.admin import OutboxFilter
    from services.profile.outbox_admin.service import OutboxAdminService
    from services.profile.shared.results import Actor

T = TypeVar("T")
CLI_USER_AGENT = "services.profile outbox CLI"
STATUSES = [s.value for s in OutboxStatus]


def cli_actor() -> Actor:
    from services.profile.shared.results import Actor  # noqa: PLC0415

    return Actor(actor_id=f"cli:{getpass.getuser()}"[:100], user_agent=CLI_USER_AGENT)


def _parse_time(_: click.Context, __: click.Parameter, value: str | None) -> datetime | None:
    """ISO 8601; without an offset the time is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run(use_case: Callable[[OutboxAdminService], Awaitable[T]]) -> T:
    from libs.kit.errors import AppError, ValidationError  # noqa: PLC0415
    from libs.kit.logging import configure_logging  # noqa: PLC0415
    from services.profile.bootstrap import open_outbox_admin  # noqa: PLC0415
    from services.profile.settings import settings_from_env  # noqa: PLC0415

    settings = settings_from_env(os.environ)
    configure_logging("profile-cli", settings.log_level)  # JSON lines on stderr; stdout is the result

    async def main() -> T:
        async with open_outbox_admin(settings) as outbox_admin:
            return await use_case(outbox_admin)

    try:
        return asyncio.run(main())
    except ValidationError as exc:
        raise click.UsageError(f"{exc.code}: {exc.detail}") from exc
    except AppError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc


def _echo_json(value: Any) -> None:
    import msgspec  # noqa: PLC0415

    click.echo(msgspec.json.encode(value).decode())


class _OldSpellings(click.Option):
    """An option whose names after the first are old spellings: still accepted, left out of --help."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        names, self.opts = self.opts, self.opts[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = names


filter_options = [
    # --customer-id as in every other command; --customer was this command's first spelling.
    click.option(
        "--customer-id", "--customer", "customer_id", cls=_OldSpellings, help="Customer id (the aggregate id)."
    ),
    click.option("--from", "created_from", callback=_parse_time, help="Created at or after (ISO 8601, UTC default)."),
    click.option("--to", "created_to", callback=_parse_time, help="Created before (ISO 8601, UTC default)."),
]


def with_filter_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(filter_options):
        command = option(command)
    return command


@click.group("outbox")
def outbox() -> None:
    """Inspect and re-drive outbox entries (settings from PROFILE_* environment variables)."""


@outbox.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@with_filter_options
@click.option("--cursor", type=int, help="nextCursor printed by the previous page.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def list_entries(
    *,
    status: str | None,
    customer_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    cursor: int | None,
    limit: int,
) -> None:
    """One JSON line per entry in commit order, then {"nextCursor": ...}."""
    where = _filter(status, customer_id, created_from, created_to)
    page = _run(lambda service: service.list_entries(where, cursor, limit))
    for entry in page.items:
        _echo_json(entry.summary())
    _echo_json({"nextCursor": str(page.next_after) if page.next_after is not None else None})


@outbox.command("show")
@click.argument("entry_id", type=click.UUID)
def show(entry_id: uuid.UUID) -> None:
    """One entry with its payload and headers, as JSON."""
    entry = _run(lambda service: service.get(entry_id))
    _echo_json(entry)


@outbox.command("redrive")
@click.option("--id", "ids", multiple=True, type=click.UUID, help="An entry id (repeatable).")
@click.option("--status", type=click.Choice([OutboxStatus.FAILED.value, OutboxStatus.PUBLISHED.value]))
@with_filter_options
def redrive(
    *,
    ids: tuple[uuid.UUID, ...],
    status: str | None,
    customer_id: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> None:
    """Set entries back to pending: --id ... (repeatable), or --status failed|published [--customer-id --from --to]."""
    from services.profile.outbox_admin.service import RedriveSelection  # noqa: PLC0415

    filter_given = any(v is not None for v in (status, customer_id, created_from, created_to))
    where = _filter(status, customer_id, created_from, created_to)
    selection = RedriveSelection(ids=ids, where=where if filter_given else None)
    actor = cli_actor()
    result = _run(lambda service: service.redrive(selection, actor))
    _echo_json(result)


def _filter(
    status: str | None, customer_id: str | None, created_from: datetime | None, created_to: datetime | None
) -> OutboxFilter:
    from libs.outbox.admin import OutboxFilter  # noqa: PLC0415

    return OutboxFilter(OutboxStatus(status) if status else None, customer_id, created_from, created_to)

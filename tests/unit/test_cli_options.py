"""Both services' commands name the same things the same way, and take only known values for them."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from services.profile.__main__ import cli as profile_cli
from services.sync_connector.__main__ import cli as connector_cli

# The things several commands take, by their one name; their values are a fixed set.
CHOICE_OPTIONS = ("--status", "--system", "--channel", "--role", "--task", "--kind")


def commands(group: click.Group, path: str) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


ALL = [*commands(profile_cli, "profile"), *commands(connector_cli, "connector")]


def _shown_names(command: click.Command) -> list[str]:
    """The option names --help shows (an old spelling kept for scripts is accepted but not shown)."""
    context = click.Context(command)
    shown = []
    for parameter in command.get_params(context):
        record = parameter.get_help_record(context) if isinstance(parameter, click.Option) else None
        if record is not None:
            shown += [name.strip().split(" ")[0] for name in record[0].split(",")]
    return shown


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_a_customer_is_always_customer_id(path: str, command: click.Command) -> None:
    names = _shown_names(command)
    assert "--customer" not in names, f"{path}: --customer-id, as every other command"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_statuses_systems_and_channels_are_choices(path: str, command: click.Command) -> None:
    for parameter in command.params:
        if isinstance(parameter, click.Option) and set(parameter.opts) & set(CHOICE_OPTIONS):
            assert isinstance(parameter.type, click.Choice), f"{path} {parameter.opts[0]}: a choice, listed in --help"


def test_the_old_spelling_of_customer_id_still_works() -> None:
    outbox = profile_cli.commands["outbox"]
    assert isinstance(outbox, click.Group)
    listing = outbox.commands["list"]
    context = listing.make_context("list", ["--customer", "C1"])
    assert context.params["customer_id"] == "C1"
    assert "--customer-id" in _shown_names(listing)

"""``python -m services.stub_externals serve``."""

from __future__ import annotations

import os

import click


@click.group()
def cli() -> None:
    """Fake CRM/CMS/CSS for dev and demos (settings come from STUBS_* environment variables)."""


@cli.command()
def serve() -> None:
    """Serve CRM/CMS/CSS and the SMS gateway on one port, and the local SMTP server, until SIGTERM/SIGINT."""
    from aiohttp import web  # noqa: PLC0415

    from libs.kit.logging import configure_logging, get_logger  # noqa: PLC0415
    from services.stub_externals.app import create_app  # noqa: PLC0415
    from services.stub_externals.mail import MailStore, RunningSmtp  # noqa: PLC0415
    from services.stub_externals.settings import settings_from_env  # noqa: PLC0415

    settings = settings_from_env(os.environ)
    configure_logging("stub-externals", settings.log_level)
    get_logger(__name__).info(
        "stub_externals_starting", host=settings.host, port=settings.port, signed_systems=sorted(settings.secrets())
    )
    smtp = RunningSmtp(MailStore(), settings.smtp_host, settings.smtp_port) if settings.smtp_enabled else None
    app = create_app(settings.secrets(), smtp=smtp)
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)


if __name__ == "__main__":
    cli()

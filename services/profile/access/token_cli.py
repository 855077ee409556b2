"""``python -m services.profile token issue|keygen``: bearer tokens for people and services.

    python -m services.profile token issue --role operator --subject alice --ttl 8h
    python -m services.profile token issue --role audit-system --subject audit-gateway --ttl 30d
    python -m services.profile token keygen --key-id 2026-11     # a new signing key pair (JSON)

``issue`` signs with ``PROFILE_AUTH_SIGNING_KEY`` under ``PROFILE_AUTH_SIGNING_KEY_ID`` and
prints only the token on stdout (for ``$(...)``); what it issued (never the token) goes to stderr.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import timedelta

import click
import msgspec

from libs.kit.tokens import Role, TokenConfigError, TokenIssuer, generate_key_pair
from services.profile.settings import settings_from_env

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> timedelta:
    """``90``, ``90s``, ``30m``, ``8h``, ``30d``."""
    match = _TTL.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 8h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@click.group()
def token() -> None:
    """Issue bearer tokens (signing key from PROFILE_AUTH_SIGNING_KEY / _KEY_ID)."""


@token.command()
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="repeat for several roles",
)
@click.option("--subject", required=True, help="who: a person's login or a service's name (the audit log's actor)")
@click.option("--ttl", default="8h", show_default=True, help="lifetime: 30m, 8h, 7d")
@click.option("--kind", type=click.Choice(["person", "service"]), default=None, help="default: from the roles")
def issue(roles: tuple[str, ...], subject: str, ttl: str, kind: str | None) -> None:
    """Print a signed JWT for SUBJECT with ROLEs."""
    settings = settings_from_env(os.environ).auth
    lifetime = parse_ttl(ttl)
    try:
        jwt = TokenIssuer(settings).issue(
            subject,
            frozenset(Role(r) for r in roles),
            lifetime,
            kind="person" if kind == "person" else "service" if kind == "service" else None,
        )
    except TokenConfigError as exc:
        click.echo(f"cannot issue a token: {exc}", err=True)
        sys.exit(2)
    click.echo(f"issued for {subject} roles={','.join(sorted(roles))} ttl={lifetime}", err=True)
    click.echo(jwt)


@token.command()
@click.option("--key-id", required=True, help="the kid tokens will carry, e.g. the month: 2026-11")
def keygen(key_id: str) -> None:
    """Print a new Ed25519 signing key pair as JSON (settings for the issuer and the verifiers)."""
    private, public = generate_key_pair()
    click.echo(
        msgspec.json.encode(
            {
                "PROFILE_AUTH_SIGNING_KEY_ID": key_id,
                "PROFILE_AUTH_SIGNING_KEY": private,
                "public_key": {key_id: public},
            }
        ).decode()
    )

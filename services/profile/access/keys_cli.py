"""``python -m services.profile keys rotate|generate``: the keys that seal contact data at rest.

Rotating the encryption key:
  1. ``keys generate --key-id 2026-12`` prints a new key;
  2. add it to ``PROFILE_CRYPTO_KEYS`` (keep the old one), set ``PROFILE_CRYPTO_ACTIVE_KEY_ID``
     to it and restart the service: new writes are sealed with it, old values still open;
  3. ``keys rotate`` re-seals every older value (profiles, backup copies, stored responses)
     in batches of ``PROFILE_CRYPTO_ROTATE_BATCH_SIZE`` (its progress on a terminal);
  4. when ``keys rotate --check`` reports nothing left, remove the old key from the settings.
A new ``PROFILE_CRYPTO_HASH_KEY`` needs ``keys rotate --every-row`` (phone hashes and digests).
"""

from __future__ import annotations

import asyncio
import os
import sys

import click
import msgspec

from libs.kit.crypto import CryptoConfigError, generate_key
from libs.kit.db import make_engine
from libs.kit.errors import AppError
from libs.kit.logging import configure_logging, get_logger
from libs.kit.progress import terminal_progress
from services.profile.access.key_rotation import RotationReport, SqlContactKeyRotation
from services.profile.settings import ProfileSettings, settings_from_env
from services.profile.shared.storage.contact_crypto import ContactProtector

log = get_logger(__name__)


@click.group()
def keys() -> None:
    """Encryption keys of contact data (PROFILE_CRYPTO_*)."""


@keys.command()
@click.option("--key-id", required=True, help="the id stored with every value it seals, e.g. 2026-12")
def generate(key_id: str) -> None:
    """Print a new AES-256 key as a PROFILE_CRYPTO_KEYS entry (JSON)."""
    click.echo(msgspec.json.encode({key_id: generate_key()}).decode())


@keys.command()
@click.option("--every-row", is_flag=True, help="also rows already under the active key (after a hash-key change)")
@click.option("--check", is_flag=True, help="only count what is left to re-seal; exit 1 if anything is")
def rotate(every_row: bool, check: bool) -> None:
    """Re-seal contact data under PROFILE_CRYPTO_ACTIVE_KEY_ID, batch by batch (progress on a terminal)."""
    settings = settings_from_env(os.environ)
    configure_logging(f"{settings.service_name}-cli", settings.log_level)
    try:
        left = asyncio.run(_rotate(settings, every_row=every_row, check=check))
    except CryptoConfigError as exc:
        click.echo(f"cannot rotate: {exc}", err=True)
        sys.exit(2)
    except AppError as exc:
        click.echo(msgspec.json.encode({"error": exc.code, "detail": exc.detail}).decode(), err=True)
        sys.exit(1)
    if check and left:
        sys.exit(1)


async def _rotate(settings: ProfileSettings, *, every_row: bool, check: bool) -> int:
    protector = ContactProtector.from_settings(settings.crypto)
    engine = make_engine(settings.database)
    try:
        rotation = SqlContactKeyRotation(engine, protector, settings.crypto.rotate_batch_size)
        due = await rotation.remaining(every_row=every_row)
        total = sum(due.values())
        if check:
            click.echo(msgspec.json.encode({"activeKeyId": protector.active_key_id, "remaining": due}).decode())
            return total
        label = f"re-sealing {total} rows under key {protector.active_key_id}"
        with terminal_progress(label, total) as progress:
            report: RotationReport = await rotation.rotate(progress, every_row=every_row)
        log.info("contact_keys_rotated", **msgspec.structs.asdict(report))
        click.echo(msgspec.json.encode(report).decode())
        return 0
    finally:
        await engine.dispose()

"""``python -m services.profile restore``: its report as JSON on stdout, its progress on a terminal only."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg

from libs.kit.db import sqlalchemy_url
from services.profile.domain.restore import BackupKind
from services.profile.shared.results import Actor
from tests.auth_support import auth_env
from tests.ledger_support import profile_services, seed_customers

CUSTOMERS = 2_500  # three chunks of the default 1,000


async def _backup_then_rename_everyone(database_url: str, db: asyncpg.Connection) -> str:
    await seed_customers(db, CUSTOMERS)
    async with profile_services(database_url) as services:
        point = await services.backups.create(BackupKind.MANUAL, "before", Actor(actor_id="test"))
    await db.execute("UPDATE profile.customer_profiles SET customer_name = customer_name || '改'")
    return point.backup_id


async def _restore(database_url: str, stderr: int, *args: str) -> tuple[int, str, str]:
    """The command as an operator runs it; ``stderr`` is a terminal's fd or ``asyncio.subprocess.PIPE``."""
    env = {**os.environ, "PROFILE_DB_URL": sqlalchemy_url(database_url), "PROFILE_LOG_LEVEL": "WARNING", **auth_env()}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.profile", "restore", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), (err or b"").decode()


async def test_a_restore_on_a_terminal_shows_the_customers_done_and_prints_json(
    database_url: str, db: asyncpg.Connection
) -> None:
    backup_id = await _backup_then_rename_everyone(database_url, db)
    reader, terminal = os.openpty()
    try:
        code, out, _ = await _restore(database_url, terminal, backup_id, "--dry-run")
        shown = os.read(reader, 65536).decode()
    finally:
        os.close(terminal)
        os.close(reader)
    assert code == 0, shown
    assert json.loads(out)["customersChanged"] == CUSTOMERS
    assert f"comparing customers that differ from {backup_id}: {CUSTOMERS:,}" in shown


async def test_a_restore_into_a_pipe_prints_json_and_no_progress(database_url: str, db: asyncpg.Connection) -> None:
    backup_id = await _backup_then_rename_everyone(database_url, db)
    code, out, err = await _restore(database_url, asyncio.subprocess.PIPE, backup_id, "--dry-run")
    assert code == 0, err
    assert json.loads(out)["customersChanged"] == CUSTOMERS
    assert err.splitlines()[0] == f"comparing customers that differ from {backup_id}"
    assert f"{CUSTOMERS:,}" not in err, "no redrawn counts in a file or a pipe"

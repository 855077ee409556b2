"""``python -m services.profile outbox list|show|redrive`` on a real PostgreSQL, audited as ``cli:<os user>``."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import uuid
from typing import Any

import asyncpg
from click.testing import CliRunner, Result

from services.profile.outbox_admin.cli import outbox
from tests.relay_support import engine_for, name_changed, outbox_rows, write


async def invoke(database_url: str, *args: str) -> Result:
    """The command in-process (a worker thread: it runs its own event loop), settings from the environment."""
    runner = CliRunner()
    env = {"PROFILE_DB_URL": database_url, "PROFILE_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(runner.invoke, outbox, list(args), env=env, catch_exceptions=False)


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


async def test_list_show_and_redrive_from_the_command_line_are_audited(database_url: str) -> None:
    parked, waiting, published = name_changed("X", 1), name_changed("X", 2), name_changed("Y", 1)
    async with engine_for(database_url) as engine:
        await write(engine, [parked, waiting, published])
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE profile.outbox SET status = 'failed', attempts = 10, last_error = 'MessageSizeTooLargeError' "
            "WHERE id = $1",
            parked.id,
        )
        await conn.execute("UPDATE profile.outbox SET status = 'published' WHERE id = $1", published.id)
    finally:
        await conn.close()

    listed = await invoke(database_url, "list", "--status", "failed")
    assert listed.exit_code == 0, listed.output
    lines = json_lines(listed.stdout)
    assert [(e["id"], e["aggregateId"], e["lastError"]) for e in lines[:-1]] == [
        (str(parked.id), "X", "MessageSizeTooLargeError")
    ]
    assert lines[-1] == {"nextCursor": None}
    paged = json_lines((await invoke(database_url, "list", "--limit", "2")).stdout)
    assert [e["id"] for e in paged[:-1]] == [str(parked.id), str(waiting.id)]
    rest = json_lines((await invoke(database_url, "list", "--cursor", paged[-1]["nextCursor"])).stdout)
    assert [e["id"] for e in rest[:-1]] == [str(published.id)]

    shown = await invoke(database_url, "show", str(parked.id))
    assert json.loads(shown.stdout)["payload"]["customerId"] == "X"

    by_filter = await invoke(database_url, "redrive", "--status", "failed", "--customer", "X")
    assert by_filter.exit_code == 0, by_filter.output
    assert json.loads(by_filter.stdout) == {"redriven": 1, "skipped": 0, "ids": [str(parked.id)]}
    by_id = await invoke(database_url, "redrive", "--id", str(published.id))
    assert json.loads(by_id.stdout)["redriven"] == 1

    rows = await outbox_rows(database_url)
    assert {rows[m.id]["status"] for m in (parked, waiting, published)} == {"pending"}
    assert rows[parked.id]["attempts"] == 0
    assert rows[parked.id]["last_error"] == "MessageSizeTooLargeError"
    conn = await asyncpg.connect(database_url)
    try:
        audits = await conn.fetch(
            "SELECT actor_id, customer_id, user_agent, new_value::text AS new_value FROM profile.audit_logs "
            "WHERE event_type = 'OUTBOX_REDRIVEN' ORDER BY id"
        )
    finally:
        await conn.close()
    actor = f"cli:{getpass.getuser()}"
    assert [(a["actor_id"], a["customer_id"]) for a in audits] == [(actor, "X"), (actor, "Y")]
    assert all("CLI" in a["user_agent"] for a in audits)
    assert json.loads(audits[0]["new_value"])["filter"] == {"status": "failed", "customerId": "X"}
    assert json.loads(audits[1]["new_value"])["ids"] == [str(published.id)]


async def test_command_line_errors_have_exit_codes_and_change_nothing(database_url: str) -> None:
    unknown = await invoke(database_url, "redrive", "--id", str(uuid.uuid4()))
    assert unknown.exit_code == 1
    assert "OUTBOX_ENTRY_NOT_FOUND" in unknown.output
    nothing = await invoke(database_url, "redrive")
    assert nothing.exit_code == 2
    assert "INVALID_OUTBOX_FILTER" in nothing.output
    pending = await invoke(database_url, "redrive", "--status", "pending")
    assert pending.exit_code == 2
    bad_time = await invoke(database_url, "list", "--from", "yesterday")
    assert bad_time.exit_code == 2
    assert "ISO 8601" in bad_time.output
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM profile.audit_logs") == 0
    finally:
        await conn.close()


async def test_the_real_entrypoint_runs_the_outbox_commands(database_url: str) -> None:
    message = name_changed("Z", 1)
    async with engine_for(database_url) as engine:
        await write(engine, [message])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.profile", "outbox", "list", "--customer", "Z",
        env={"PROFILE_DB_URL": database_url, "PROFILE_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert [e["id"] for e in json_lines(stdout.decode())[:-1]] == [str(message.id)]

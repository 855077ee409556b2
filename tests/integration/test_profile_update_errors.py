"""Seed 000 6.1/6.2 and section 8 on a real PostgreSQL: what a failed update tells the client, the log
and the application.

* ``CONCURRENCY_CONFLICT`` is not a "retry": the application's ``profileVersion`` is fixed, so the
  problem says ``retryable: false`` and ``action: REAPPLY``;
* ``UPDATE_ERROR`` is logged at error level with the error's stack;
* any exception, not only the known kinds, rolls the update back, marks the application
  ``update_failed`` in its own transaction and answers a problem with a stable type.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping, Sequence
from typing import Any

import asyncpg
from structlog.testing import capture_logs

from tests.ledger_support import Client, assert_problem, counts, create_customer, fail_history_inserts, submit


async def approve(client: Client, application_id: str) -> Any:
    return await client.post(
        f"/v1/name-change-applications/{application_id}/decision",
        json={"decision": "approved", "auditorId": "auditor-1"},
    )


async def metric(client: Client, name: str, **labels: str) -> float:
    """A sample of the profile service's /metrics (0 when the series does not exist yet)."""
    text = (await client.get("/metrics")).text
    wanted = sorted(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name and sorted(filter(None, (match.group(2) or "").split(","))) == wanted:
            return float(match.group(3))
    return 0.0


def update_errors(logs: Sequence[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "UPDATE_ERROR"]


async def test_a_stale_application_is_told_to_reapply_not_to_retry(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    winner, stale = await submit(client, "C1", "李四"), await submit(client, "C1", "王五")
    assert (await approve(client, winner)).status_code == 200

    with capture_logs() as logs:
        response = await approve(client, stale)

    body = assert_problem(response, 409, "CONCURRENCY_CONFLICT")
    assert (body["retryable"], body["action"]) == (False, "REAPPLY")
    assert "re-apply" in body["detail"], body["detail"]
    assert "retry-after" not in response.headers, "nothing to wait for: a repeat fails the same way"
    (logged,) = update_errors(logs)
    assert (logged["log_level"], logged["code"], logged["application_id"]) == ("error", "CONCURRENCY_CONFLICT", stale)
    assert logged["exc_info"] is not None, "UPDATE_ERROR carries the error and its stack"
    # Indeed: repeating the update of that application fails again, whatever the wait.
    repeated = await client.post("/v1/profile-updates", json={"applicationId": stale})
    assert assert_problem(repeated, 409, "CONCURRENCY_CONFLICT")["action"] == "REAPPLY"
    # What the problem says to do works: re-applied, decided again, applied.
    assert (await client.post(f"/v1/name-change-applications/{stale}/reapply")).status_code == 200
    assert (await approve(client, stale)).status_code == 200
    assert await counts(db, "C1") == {"history": 2, "outbox": 2, "completed": 2}


async def test_update_error_is_logged_at_error_level_with_the_stack(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    application_id = await submit(client, "C1", "李四")
    await fail_history_inserts(db, "injected failure in the history insert")

    with capture_logs() as logs:
        response = await approve(client, application_id)

    assert_problem(response, 503, "DATABASE_ERROR")
    (logged,) = update_errors(logs)
    assert (logged["log_level"], logged["code"]) == ("error", "DATABASE_ERROR")
    error = logged["exc_info"]
    assert isinstance(error, BaseException)
    assert error.__traceback__ is not None
    assert "injected failure in the history insert" in repr(error.__cause__)
    assert await metric(client, "name_change_update_failed_total", code="DATABASE_ERROR") == 1


async def break_the_customer_row(db: asyncpg.Connection, customer_id: str) -> None:
    """A row this release cannot read: a status value only a newer release knows (rolling upgrade)."""
    await db.execute("ALTER TABLE profile.customer_profiles DROP CONSTRAINT IF EXISTS customer_profiles_status_check")
    await db.execute("UPDATE profile.customer_profiles SET status='dormant' WHERE customer_id=$1", customer_id)


async def test_an_unexpected_exception_rolls_back_marks_update_failed_and_answers_a_typed_problem(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_customer(client, "C1")
    application_id = await submit(client, "C1", "李四")
    constraint = await db.fetchval(
        "SELECT conname FROM pg_constraint WHERE conrelid='profile.customer_profiles'::regclass "
        "AND pg_get_constraintdef(oid) LIKE '%status%'"
    )
    assert constraint == "customer_profiles_status_check"
    await break_the_customer_row(db, "C1")

    with capture_logs() as logs:
        response = await approve(client, application_id)

    # Not an AppError inside: a ValueError of the domain's enum. It leaves as a typed problem.
    body = assert_problem(response, 500, "UNEXPECTED_ERROR")
    assert (body["retryable"], body["action"]) == (False, "MANUAL_INTERVENTION")
    assert "ValueError" not in body["detail"], "internals stay in the log and the application, not the answer"
    (logged,) = update_errors(logs)
    assert (logged["log_level"], logged["code"]) == ("error", "UNEXPECTED_ERROR")
    assert isinstance(logged["exc_info"], ValueError)
    assert "dormant" in logged["error"]
    # Rolled back, then marked in its own transaction: approved by the auditor, update_failed, audited.
    assert await counts(db, "C1") == {"history": 0, "outbox": 0, "completed": 0}
    row = await db.fetchrow(
        "SELECT status, failure_code, failure_detail, auditor_id FROM profile.name_change_applications "
        "WHERE application_id=$1",
        application_id,
    )
    assert (row["status"], row["failure_code"], row["auditor_id"]) == ("update_failed", "UNEXPECTED_ERROR", "auditor-1")
    assert row["failure_detail"].startswith("ValueError: 'dormant'")
    events = await db.fetch(
        "SELECT event_type FROM profile.audit_logs WHERE application_id=$1 ORDER BY id", application_id
    )
    assert [e["event_type"] for e in events] == ["APPLICATION_SUBMITTED", "UPDATE_FAILED"]
    assert await metric(client, "name_change_update_failed_total", code="UNEXPECTED_ERROR") == 1
    assert await metric(client, "profile_update_failure_total", code="UNEXPECTED_ERROR") == 1

    # Once the row is readable again, the failed application is run again (seed 5.2.1: update_failed may be re-run).
    await db.execute("UPDATE profile.customer_profiles SET status='active' WHERE customer_id='C1'")
    retried = await client.post("/v1/profile-updates", json={"applicationId": application_id})
    assert retried.status_code == 200, retried.text
    assert await counts(db, "C1") == {"history": 1, "outbox": 1, "completed": 1}


async def test_an_unexpected_exception_fails_its_item_of_a_batch_not_the_batch(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_customer(client, "C1")
    await create_customer(client, "C2", "李四")
    broken, fine = await submit(client, "C1", "王五"), await submit(client, "C2", "赵六")
    # Approved by the audit system earlier (seed 5.2.1 runs the update as a call of its own).
    await db.execute(
        "UPDATE profile.name_change_applications SET status='approved', auditor_id='auditor-1', decided_at=now()"
    )
    await break_the_customer_row(db, "C1")

    response = await client.post("/v1/profile-updates/batch", json={"applicationIds": [broken, fine]})

    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert (first["applicationId"], first["success"], first["errorCode"]) == (broken, False, "UNEXPECTED_ERROR")
    assert (second["applicationId"], second["success"]) == (fine, True)
    statuses = dict(await db.fetch("SELECT application_id, status FROM profile.name_change_applications"))
    assert statuses == {broken: "update_failed", fine: "completed"}

"""Name-change applications around the update: listing, re-applying a failed one, the batch bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.ledger_support import Client, assert_problem, counts, create_customer, patch_customer, submit


@pytest.fixture
def profile_env() -> dict[str, str]:
    return {"PROFILE_HTTP_MAX_BATCH_SIZE": "3"}


async def decide(client: Client, application_id: str, decision: str = "approved") -> int:
    response = await client.post(
        f"/v1/name-change-applications/{application_id}/decision",
        json={"decision": decision, "auditorId": "auditor-1"},
    )
    return response.status_code


async def test_list_filters_by_status_customer_and_time_newest_first(client: Client) -> None:
    await create_customer(client, "C1")
    await create_customer(client, "C2", "李四")
    first = await submit(client, "C1", "王五")
    second = await submit(client, "C2", "赵六")
    third = await submit(client, "C1", "钱七")
    assert await decide(client, second, "rejected") == 200

    everything = (await client.get("/v1/name-change-applications")).json()
    assert [a["applicationId"] for a in everything["items"]] == [third, second, first]
    assert {a["origin"] for a in everything["items"]} == {"application"}
    pending_c1 = await client.get("/v1/name-change-applications", params={"status": "pending", "customerId": "C1"})
    assert [a["applicationId"] for a in pending_c1.json()["items"]] == [third, first]
    rejected = await client.get("/v1/name-change-applications", params={"status": "rejected"})
    assert [a["applicationId"] for a in rejected.json()["items"]] == [second]

    page = (await client.get("/v1/name-change-applications", params={"limit": 2})).json()
    rest = (await client.get("/v1/name-change-applications", params={"limit": 2, "cursor": page["nextCursor"]})).json()
    assert [a["applicationId"] for a in page["items"] + rest["items"]] == [third, second, first]
    assert rest["nextCursor"] is None

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await client.get("/v1/name-change-applications", params={"from": future})).json()["items"] == []
    assert len((await client.get("/v1/name-change-applications", params={"to": future})).json()["items"]) == 3
    assert_problem(await client.get("/v1/name-change-applications", params={"status": "lost"}), 422, "VALIDATION")
    assert_problem(await client.get("/v1/name-change-applications", params={"from": "yesterday"}), 422, "VALIDATION")


async def test_reapply_rebases_a_conflicted_application_for_a_new_decision(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_customer(client, "C1")
    winner, loser = await submit(client, "C1", "李四"), await submit(client, "C1", "王五")
    assert await decide(client, winner) == 200
    assert await decide(client, loser) == 409  # made against version 1, the profile is at 2
    failed = (await client.get(f"/v1/name-change-applications/{loser}")).json()
    assert (failed["status"], failed["failureCode"]) == ("update_failed", "CONCURRENCY_CONFLICT")

    response = await client.post(f"/v1/name-change-applications/{loser}/reapply")

    assert response.status_code == 200, response.text
    rebased = response.json()
    assert (rebased["status"], rebased["oldName"], rebased["profileVersion"]) == ("pending", "李四", 2)
    assert (rebased["auditorId"], rebased["failureCode"], rebased["decidedAt"]) == (None, None, None)
    # Only a new decision applies it, against the version the auditor now sees.
    assert_problem(await client.post(f"/v1/name-change-applications/{loser}/reapply"), 409, "INVALID_STATUS")
    assert await decide(client, loser) == 200
    profile = (await client.get("/v1/customers/C1")).json()
    assert (profile["customerName"], profile["version"]) == ("王五", 3)
    assert await counts(db, "C1") == {"history": 2, "outbox": 2, "completed": 2}
    events = await db.fetch("SELECT event_type FROM profile.audit_logs WHERE application_id=$1 ORDER BY id", loser)
    assert [e["event_type"] for e in events] == [
        "APPLICATION_SUBMITTED",
        "UPDATE_FAILED",
        "APPLICATION_REAPPLIED",
        "APPLICATION_APPROVED",
        "PROFILE_UPDATED",
    ]


async def test_reapply_refusals(client: Client) -> None:
    await create_customer(client, "C1")
    pending = await submit(client, "C1", "李四")
    assert_problem(await client.post(f"/v1/name-change-applications/{pending}/reapply"), 409, "INVALID_STATUS")
    assert_problem(await client.post("/v1/name-change-applications/APP-x/reapply"), 404, "APPLICATION_NOT_FOUND")
    # The profile was meanwhile renamed to exactly the requested name: nothing left to apply.
    stale = await submit(client, "C1", "王五")
    assert (await patch_customer(client, "C1", {"customerName": "王五"}, 1)).status_code == 200
    assert await decide(client, stale) == 409
    body = assert_problem(await client.post(f"/v1/name-change-applications/{stale}/reapply"), 422, "VALIDATION")
    assert body["errors"][0]["key"] == "newName"


async def test_submission_of_the_current_name_is_refused(client: Client) -> None:
    await create_customer(client, "C1")
    response = await client.post(
        "/v1/name-change-applications", json={"customerId": "C1", "newName": "张三", "reason": "x"}
    )
    assert assert_problem(response, 422, "VALIDATION")["errors"][0]["key"] == "newName"


async def test_batch_is_bounded_by_the_setting(client: Client) -> None:
    response = await client.post("/v1/profile-updates/batch", json={"applicationIds": ["A", "B", "C", "D"]})
    body = assert_problem(response, 422, "VALIDATION")
    assert body["errors"][0]["key"] == "applicationIds"
    assert_problem(await client.post("/v1/profile-updates/batch", json={"applicationIds": []}), 422, "VALIDATION")

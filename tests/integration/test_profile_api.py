"""The profile service's HTTP contract on a real PostgreSQL (seed 000 5.2.1 and 6.1)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from tests.ledger_support import counts, fail_history_inserts

PROBLEM = "https://customer-profile.example/problems/"


async def create_customer(client: AsyncTestClient[Any], customer_id: str, name: str = "张三") -> httpx.Response:
    response = await client.post(
        "/v1/customers",
        json={
            "customerId": customer_id,
            "customerName": name,
            "accountType": "residential",
            "contactPhone": "+86 138 0013 8000",
            "contactEmail": "zhang@example.com",
        },
    )
    assert response.status_code == 201, response.text
    return response


async def submit(client: AsyncTestClient[Any], customer_id: str, new_name: str) -> str:
    response = await client.post(
        "/v1/name-change-applications", json={"customerId": customer_id, "newName": new_name, "reason": "过户"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    application_id: str = body["applicationId"]
    return application_id


def approve(client: AsyncTestClient[Any], application_id: str) -> Any:
    return client.post(
        f"/v1/name-change-applications/{application_id}/decision",
        json={"decision": "approved", "auditorId": "auditor-1", "comment": "ok"},
    )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["type"] == PROBLEM + code.lower().replace("_", "-")
    assert body["status"] == status
    return body


async def test_create_and_get_customer(client: AsyncTestClient[Any]) -> None:
    created = await create_customer(client, "C001")
    assert created.headers["etag"] == '"1"'
    response = await client.get("/v1/customers/C001")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    body = response.json()
    assert body["customerName"] == "张三"
    assert body["version"] == 1
    assert body["accountType"] == "residential"


async def test_duplicate_customer_is_409(client: AsyncTestClient[Any]) -> None:
    await create_customer(client, "C001")
    response = await client.post(
        "/v1/customers", json={"customerId": "C001", "customerName": "李四", "accountType": "commercial"}
    )
    assert_problem(response, 409, "CUSTOMER_EXISTS")


@pytest.mark.parametrize(
    "body",
    [
        {"customerId": "C1", "customerName": "", "accountType": "residential"},
        {"customerId": "C1", "customerName": "x", "accountType": "martian"},
        {"customerId": "C1", "customerName": "x", "accountType": "residential", "contactEmail": "not-mail"},
        {"customerId": "C1", "customerName": "x", "accountType": "residential", "contactPhone": "abc"},
        {"customerId": "C1", "customerName": "x" * 101, "accountType": "residential"},
        {"customerId": "C1", "customerName": "x", "accountType": "residential", "unknownField": 1},
        {"customerName": "x", "accountType": "residential"},
    ],
)
async def test_invalid_customer_is_422(client: AsyncTestClient[Any], body: dict[str, Any]) -> None:
    assert_problem(await client.post("/v1/customers", json=body), 422, "VALIDATION")


async def test_approval_updates_profile_in_one_transaction(
    client: AsyncTestClient[Any], db: asyncpg.Connection
) -> None:
    await create_customer(client, "C001")
    application_id = await submit(client, "C001", "李四")

    response = await approve(client, application_id)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is True
    assert (result["oldName"], result["newName"], result["profileVersion"]) == ("张三", "李四", 2)
    profile = (await client.get("/v1/customers/C001")).json()
    assert (profile["customerName"], profile["version"]) == ("李四", 2)
    assert await counts(db, "C001") == {"history": 1, "outbox": 1, "completed": 1}
    history = (await client.get("/v1/customers/C001/name-history")).json()
    assert [(h["oldName"], h["newName"], h["profileVersion"]) for h in history] == [("张三", "李四", 2)]
    outbox = await db.fetchrow("SELECT id, payload, headers, status FROM profile.outbox WHERE aggregate_id='C001'")
    assert str(outbox["id"]) == result["eventId"]
    assert outbox["status"] == "pending"
    headers = __import__("json").loads(outbox["headers"])
    assert headers["ce_id"] == result["eventId"]
    assert headers["ce_type"] == "customer.profile.name-changed.v1"
    assert headers["ce_subject"] == "C001"
    assert headers["traceparent"].startswith("00-")
    events = await db.fetch(
        "SELECT event_type FROM profile.audit_logs WHERE application_id=$1 ORDER BY id", application_id
    )
    assert [e["event_type"] for e in events] == ["APPLICATION_SUBMITTED", "APPLICATION_APPROVED", "PROFILE_UPDATED"]


async def test_repeated_profile_update_returns_first_result_and_writes_nothing(
    client: AsyncTestClient[Any], db: asyncpg.Connection
) -> None:
    await create_customer(client, "C001")
    application_id = await submit(client, "C001", "李四")
    first = (await approve(client, application_id)).json()

    again = await client.post("/v1/profile-updates", json={"applicationId": application_id})

    assert again.status_code == 200
    assert again.json() == first
    assert await counts(db, "C001") == {"history": 1, "outbox": 1, "completed": 1}


async def test_rejection_records_the_decision_and_changes_nothing(
    client: AsyncTestClient[Any], db: asyncpg.Connection
) -> None:
    await create_customer(client, "C001")
    application_id = await submit(client, "C001", "李四")
    response = await client.post(
        f"/v1/name-change-applications/{application_id}/decision",
        json={"decision": "rejected", "auditorId": "auditor-1", "comment": "证件不符"},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert await counts(db, "C001") == {"history": 0, "outbox": 0, "completed": 0}
    assert_problem(await approve(client, application_id), 409, "INVALID_STATUS")


async def test_not_found_errors(client: AsyncTestClient[Any]) -> None:
    assert_problem(await approve(client, "APP-missing"), 404, "APPLICATION_NOT_FOUND")
    assert_problem(
        await client.post("/v1/profile-updates", json={"applicationId": "APP-missing"}), 404, "APPLICATION_NOT_FOUND"
    )
    assert_problem(await client.get("/v1/customers/NOPE"), 404, "PROFILE_NOT_FOUND")
    response = await client.post(
        "/v1/name-change-applications", json={"customerId": "NOPE", "newName": "x", "reason": "y"}
    )
    assert_problem(response, 404, "PROFILE_NOT_FOUND")


async def test_update_of_pending_application_is_invalid_status(client: AsyncTestClient[Any]) -> None:
    await create_customer(client, "C001")
    application_id = await submit(client, "C001", "李四")
    response = await client.post("/v1/profile-updates", json={"applicationId": application_id})
    assert_problem(response, 409, "INVALID_STATUS")
    assert (await client.get(f"/v1/name-change-applications/{application_id}")).json()["status"] == "pending"


async def test_two_approvals_racing_on_one_customer_exactly_one_wins(
    client: AsyncTestClient[Any], db: asyncpg.Connection
) -> None:
    await create_customer(client, "C001")
    first, second = await submit(client, "C001", "李四"), await submit(client, "C001", "王五")

    responses = await asyncio.gather(approve(client, first), approve(client, second))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    body = assert_problem(loser, 409, "CONCURRENCY_CONFLICT")
    # A repeat of the same application can never succeed: the client is told to re-apply.
    assert (body["retryable"], body["action"]) == (False, "REAPPLY")
    assert await counts(db, "C001") == {"history": 1, "outbox": 1, "completed": 1}
    statuses_in_db = sorted(r["status"] for r in await db.fetch("SELECT status FROM profile.name_change_applications"))
    assert statuses_in_db == ["completed", "update_failed"]


async def test_failure_after_history_insert_rolls_everything_back(
    client: AsyncTestClient[Any], db: asyncpg.Connection
) -> None:
    await create_customer(client, "C001")
    application_id = await submit(client, "C001", "李四")
    await fail_history_inserts(db, "injected failure after history insert")

    response = await approve(client, application_id)

    assert_problem(response, 503, "DATABASE_ERROR")
    assert await counts(db, "C001") == {"history": 0, "outbox": 0, "completed": 0}
    profile = (await client.get("/v1/customers/C001")).json()
    assert (profile["customerName"], profile["version"]) == ("张三", 1)
    application = (await client.get(f"/v1/name-change-applications/{application_id}")).json()
    assert application["status"] == "update_failed"
    assert application["failureCode"] == "DATABASE_ERROR"
    assert application["auditorId"] == "auditor-1"

    # Once the fault is gone the failed application can be re-run.
    await db.execute("DROP TRIGGER fail_history ON profile.name_change_history")
    retried = await client.post("/v1/profile-updates", json={"applicationId": application_id})
    assert retried.status_code == 200, retried.text
    assert await counts(db, "C001") == {"history": 1, "outbox": 1, "completed": 1}


async def test_database_unavailable_is_503(
    client: AsyncTestClient[Any], database_url: str, postgres_server_url: str
) -> None:
    await create_customer(client, "C001")
    name = database_url.rsplit("/", 1)[1]
    db = await asyncpg.connect(postgres_server_url)
    await db.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=$1 AND pid <> pg_backend_pid()", name
    )
    try:
        response = await client.get("/v1/customers/C001")
        body = assert_problem(response, 503, "DATABASE_ERROR")
        assert body["retryable"] is True
        assert (await client.get("/ready")).status_code == 503
    finally:
        await db.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await db.close()
    assert (await client.get("/v1/customers/C001")).status_code == 200


async def test_batch_updates_one_transaction_each(client: AsyncTestClient[Any]) -> None:
    await create_customer(client, "C001")
    await create_customer(client, "C002", "赵六")
    first = await submit(client, "C001", "李四")
    await approve(client, first)
    pending = await submit(client, "C002", "钱七")
    response = await client.post("/v1/profile-updates/batch", json={"applicationIds": [first, pending, "APP-x"]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["applicationId"], r["success"], r.get("errorCode")) for r in results] == [
        (first, True, None),
        (pending, False, "INVALID_STATUS"),
        ("APP-x", False, "APPLICATION_NOT_FOUND"),
    ]


async def test_openapi_health_and_metrics(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).status_code == 200
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/v1/name-change-applications/{application_id}/decision" in schema["paths"]
    await create_customer(client, "C001")
    await approve(client, await submit(client, "C001", "李四"))
    text = (await client.get("/metrics")).text
    assert 'profile_update_success_total{customer_type="residential"} 1.0' in text
    assert "profile_update_duration_seconds_bucket" in text

"""``Idempotency-Key`` on POST: replays, reuse with another body, scope, retryable failures, expiry."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.ledger_support import Client, assert_problem, customer_body


async def test_same_key_same_body_replays_the_first_response(client: Client, db: asyncpg.Connection) -> None:
    key = {"Idempotency-Key": "create-C1"}
    first = await client.post("/v1/customers", json=customer_body("C1"), headers=key)
    again = await client.post("/v1/customers", json=customer_body("C1"), headers=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["location"] == "/v1/customers/C1"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await db.fetchval("SELECT count(*) FROM profile.audit_logs WHERE event_type='CUSTOMER_CREATED'") == 1
    # Without the key the duplicate is refused as usual.
    assert_problem(await client.post("/v1/customers", json=customer_body("C1")), 409, "CUSTOMER_EXISTS")


async def test_same_key_other_body_is_refused(client: Client) -> None:
    key = {"Idempotency-Key": "k-1"}
    assert (await client.post("/v1/customers", json=customer_body("C1"), headers=key)).status_code == 201
    other = await client.post("/v1/customers", json=customer_body("C2"), headers=key)
    assert_problem(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert_problem(await client.get("/v1/customers/C2"), 404, "PROFILE_NOT_FOUND")


async def test_keys_are_scoped_per_route(client: Client) -> None:
    key = {"Idempotency-Key": "shared"}
    assert (await client.post("/v1/customers", json=customer_body("C1"), headers=key)).status_code == 201
    submitted = await client.post(
        "/v1/name-change-applications", json={"customerId": "C1", "newName": "李四", "reason": "过户"}, headers=key
    )
    assert submitted.status_code == 201, submitted.text
    assert "idempotent-replayed" not in submitted.headers


async def test_decisions_replay_with_their_original_status(client: Client, db: asyncpg.Connection) -> None:
    await client.post("/v1/customers", json=customer_body("C1"))
    application = (
        await client.post(
            "/v1/name-change-applications", json={"customerId": "C1", "newName": "李四", "reason": "过户"}
        )
    ).json()["applicationId"]
    path = f"/v1/name-change-applications/{application}/decision"
    decision = {"decision": "approved", "auditorId": "auditor-1"}
    key = {"Idempotency-Key": "decide-once"}

    first, again = (
        await client.post(path, json=decision, headers=key),
        await client.post(path, json=decision, headers=key),
    )

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert await db.fetchval("SELECT count(*) FROM profile.outbox") == 1
    # A stored 4xx is replayed too: the same key on a rejected body keeps its first answer.
    missing = "/v1/name-change-applications/APP-missing/decision"
    lost = await client.post(missing, json=decision, headers={"Idempotency-Key": "nf"})
    replayed = await client.post(missing, json=decision, headers={"Idempotency-Key": "nf"})
    assert (lost.status_code, replayed.status_code) == (404, 404)
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_retryable_failures_are_not_stored(client: Client, db: asyncpg.Connection) -> None:
    await client.post("/v1/customers", json=customer_body("C1"))
    await db.execute("""
        CREATE FUNCTION profile.refuse_backup() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected'; END $$;
        CREATE TRIGGER refuse_backup BEFORE INSERT ON profile.backups
            FOR EACH ROW EXECUTE FUNCTION profile.refuse_backup();
    """)
    key = {"Idempotency-Key": "backup-1"}
    assert_problem(await client.post("/v1/backups", json={}, headers=key), 503, "DATABASE_ERROR")
    await db.execute("DROP TRIGGER refuse_backup ON profile.backups")
    retried = await client.post("/v1/backups", json={}, headers=key)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


async def test_concurrent_requests_with_one_key_run_once(client: Client, db: asyncpg.Connection) -> None:
    key = {"Idempotency-Key": "race"}
    responses = await asyncio.gather(
        *(client.post("/v1/customers", json=customer_body("C1"), headers=key) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "IDEMPOTENCY_KEY_IN_USE")
    assert await db.fetchval("SELECT count(*) FROM profile.audit_logs WHERE event_type='CUSTOMER_CREATED'") == 1


async def test_expired_keys_are_forgotten(client: Client, db: asyncpg.Connection) -> None:
    key = {"Idempotency-Key": "old"}
    assert (await client.post("/v1/customers", json=customer_body("C1"), headers=key)).status_code == 201
    await db.execute("UPDATE profile.idempotency_keys SET expires_at = now() - interval '1 second'")
    # An expired key starts afresh: the request runs again (and meets the duplicate id).
    assert_problem(await client.post("/v1/customers", json=customer_body("C1"), headers=key), 409, "CUSTOMER_EXISTS")


async def test_bad_keys_are_refused(client: Client) -> None:
    response = await client.post("/v1/customers", json=customer_body("C1"), headers={"Idempotency-Key": "k" * 201})
    assert assert_problem(response, 422, "VALIDATION")["errors"][0]["key"] == "Idempotency-Key"

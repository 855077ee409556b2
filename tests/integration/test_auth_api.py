"""Authentication on the running app: who the actor is, cookies, idempotent replays, expiry, the connector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from libs.kit.tokens import Role, TokenIssuer
from tests.auth_support import bearer, token, token_settings
from tests.ledger_support import Client, assert_problem, customer_body, profile_client


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    async with profile_client(database_url) as test_client:
        test_client.headers.pop("Authorization")
        yield test_client


async def test_the_actor_is_the_token_subject_never_a_header(client: Client, database_url: str) -> None:
    headers = {**bearer(Role.OPERATOR, subject="op-ann"), "X-Actor-Id": "someone-else"}
    assert (await client.post("/v1/customers", json=customer_body("A1"), headers=headers)).status_code == 201
    db = await asyncpg.connect(database_url)
    try:
        actors = await db.fetch("SELECT actor_id FROM profile.audit_logs WHERE customer_id = 'A1'")
    finally:
        await db.close()
    assert [a["actor_id"] for a in actors] == ["op-ann"]


async def test_expired_tokens_and_the_www_authenticate_header(client: Client) -> None:
    # Issued an hour ago for a minute: expired well past the leeway, without waiting.
    stale = TokenIssuer(token_settings()).issue(
        "old", frozenset({Role.VIEWER}), timedelta(minutes=1), now=datetime.now(UTC) - timedelta(hours=1)
    )
    response = await client.get("/v1/customers", headers={"Authorization": f"Bearer {stale}"})
    body = assert_problem(response, 401, "UNAUTHENTICATED")
    assert "expired" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await client.get("/v1/customers", headers={"Authorization": "Basic YTpi"}), 401, "UNAUTHENTICATED")
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/schema/openapi.json")).status_code == 200


async def test_the_session_cookie_carries_the_same_token(client: Client) -> None:
    client.cookies.set("profile_session", token(Role.VIEWER, subject="browser"))
    assert (await client.get("/v1/customers")).status_code == 200
    assert_problem(await client.post("/v1/customers", json=customer_body("A2")), 403, "FORBIDDEN")
    client.cookies.set("profile_session", "garbage")
    assert_problem(await client.get("/v1/customers"), 401, "UNAUTHENTICATED")


async def test_an_idempotent_replay_is_authorized_and_belongs_to_its_caller(client: Client) -> None:
    key = {"Idempotency-Key": "create-A3"}
    operator = {**bearer(Role.OPERATOR, subject="op-ann"), **key}
    first = await client.post("/v1/customers", json=customer_body("A3"), headers=operator)
    assert first.status_code == 201
    replay = await client.post("/v1/customers", json=customer_body("A3"), headers=operator)
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")
    # Same key and body without the role: the guard answers, not the stored response (with contact data).
    viewer = await client.post("/v1/customers", json=customer_body("A3"), headers={**bearer(Role.VIEWER), **key})
    assert_problem(viewer, 403, "FORBIDDEN")
    anonymous = await client.post("/v1/customers", json=customer_body("A3"), headers=key)
    assert_problem(anonymous, 401, "UNAUTHENTICATED")
    # Another operator's key space is their own: the request runs (and finds the customer exists).
    other = await client.post(
        "/v1/customers", json=customer_body("A3"), headers={**bearer(Role.OPERATOR, subject="op-bo"), **key}
    )
    assert_problem(other, 409, "CUSTOMER_EXISTS")
    assert "idempotent-replayed" not in other.headers

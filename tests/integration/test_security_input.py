"""Hostile input: names in any script stored verbatim, SQL-shaped text is data, limits hold."""

from __future__ import annotations

import asyncpg

from tests.ledger_support import Client, assert_problem, customer_body

NAMES = [
    "张三",
    "欧阳娜娜",
    "O'Brien",
    "Zoë Saldaña",
    "e\u0301\u0302\u0303 combining",  # combining marks stay as sent (no normalization)
    "\U0001f600 emoji \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "ﷺ العربية",
    "'; DROP TABLE profile.customer_profiles; --",
    "Robert'); DELETE FROM profile.audit_logs WHERE ('1'='1",
    "%_\\ wildcard % and _ and \\",
    "名" * 100,  # the longest allowed
]


async def test_every_name_is_stored_and_returned_verbatim(client: Client, db: asyncpg.Connection) -> None:
    for number, name in enumerate(NAMES):
        created = await client.post("/v1/customers", json=customer_body(f"U{number}", name))
        assert created.status_code == 201, (name, created.text)
        assert (await client.get(f"/v1/customers/U{number}")).json()["customerName"] == name
        stored = await db.fetchval(
            "SELECT customer_name FROM profile.customer_profiles WHERE customer_id=$1", f"U{number}"
        )
        assert stored == name
    # A rename to a hostile name goes the whole way: application, history, audit entry.
    application = await client.post(
        "/v1/name-change-applications", json={"customerId": "U0", "newName": NAMES[7], "reason": NAMES[8]}
    )
    assert application.status_code == 201, application.text
    decided = await client.post(
        f"/v1/name-change-applications/{application.json()['applicationId']}/decision",
        json={"decision": "approved", "auditorId": "auditor-1", "comment": NAMES[5]},
    )
    assert decided.json()["newName"] == NAMES[7]
    history = (await client.get("/v1/customers/U0/name-history")).json()
    assert history[0]["newName"] == NAMES[7]
    assert await db.fetchval("SELECT count(*) FROM profile.customer_profiles") == len(NAMES)  # nothing dropped
    # Searching with wildcards and SQL finds exactly what contains them, nothing more.
    found = (await client.get("/v1/customers", params={"nameContains": "%_\\"})).json()["items"]
    assert [c["customerId"] for c in found] == ["U9"]
    found = (await client.get("/v1/customers", params={"nameContains": "' OR '1'='1"})).json()["items"]
    assert found == []


async def test_limits_and_strict_schemas(client: Client) -> None:
    too_long = await client.post("/v1/customers", json=customer_body("L1", "名" * 101))
    assert_problem(too_long, 422, "VALIDATION")
    unknown = await client.post("/v1/customers", json={**customer_body("L2"), "isAdmin": True})
    assert assert_problem(unknown, 422, "VALIDATION")["errors"][0]["key"] == "isAdmin"
    huge = await client.post("/v1/customers", json=customer_body("L3", contactAddress="x" * 300_000))
    assert huge.status_code == 413
    assert_problem(await client.get("/v1/customers", params={"limit": 201}), 422, "VALIDATION")
    batch = await client.post("/v1/profile-updates/batch", json={"applicationIds": [f"APP-{n}" for n in range(101)]})
    assert_problem(batch, 422, "VALIDATION")
    for nul in (
        client.post("/v1/customers", json=customer_body("L4", "a\u0000b")),
        client.get("/v1/customers", params={"nameContains": "a\u0000"}),
        client.get("/v1/customers/C%00"),
    ):
        assert_problem(await nul, 422, "VALIDATION")
    blank = await client.post("/v1/customers", json=customer_body("L5", "   "))
    assert_problem(blank, 422, "VALIDATION")
    # The text "\u0000" (a backslash and five characters) is a name like any other.
    literal = await client.post("/v1/customers", json=customer_body("L6", "\\u0000"))
    assert literal.status_code == 201, literal.text
    assert literal.json()["customerName"] == "\\u0000"

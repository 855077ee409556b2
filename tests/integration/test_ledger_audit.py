"""The operation log: who did what from where, queryable, append-only, without contact data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from libs.kit.tokens import Role
from tests.auth_support import bearer
from tests.ledger_support import Client, assert_problem, create_customer, patch_customer


async def test_every_change_is_logged_with_actor_address_and_agent(client: Client) -> None:
    operator = {**bearer(Role.OPERATOR, subject="operator-7"), "User-Agent": "ledger-test/1.0"}
    admin = bearer(Role.ADMIN, subject="admin-1")
    created = await client.post(
        "/v1/customers",
        json={"customerId": "C1", "customerName": "张三", "accountType": "residential", "contactPhone": "13800138000"},
        headers=operator,
    )
    assert created.status_code == 201
    assert (
        await client.patch("/v1/customers/C1", json={"status": "suspended"}, headers={**operator, "If-Match": '"1"'})
    ).status_code == 200
    assert (await client.delete("/v1/customers/C1", headers=operator)).status_code == 200
    assert (await client.post("/v1/customers/C1/restore", headers=admin)).status_code == 200
    assert (await client.post("/v1/backups", json={}, headers=admin)).status_code == 201

    page = (await client.get("/v1/audit-logs", params={"customerId": "C1"})).json()
    entries = page["items"]
    assert [e["eventType"] for e in entries] == [
        "CUSTOMER_RESTORED",
        "CUSTOMER_DELETED",
        "CUSTOMER_UPDATED",
        "CUSTOMER_CREATED",
    ]
    update = entries[2]
    assert (update["actorId"], update["userAgent"]) == ("operator-7", "ledger-test/1.0")
    assert update["ipAddress"]
    assert update["traceId"]
    assert (update["oldValue"]["status"], update["newValue"]["status"]) == ("active", "suspended")
    assert update["newValue"]["changedFields"] == ["status"]
    created_entry = entries[3]
    assert created_entry["newValue"]["customerName"] == "张三"
    assert "contactPhone" in created_entry["newValue"]["changedFields"]
    assert "13800138000" not in str(page)

    by_actor = (await client.get("/v1/audit-logs", params={"actorId": "admin-1"})).json()["items"]
    assert [e["eventType"] for e in by_actor] == ["BACKUP_CREATED", "CUSTOMER_RESTORED"]
    by_type = (await client.get("/v1/audit-logs", params={"eventType": "BACKUP_CREATED"})).json()["items"]
    assert by_type[0]["newValue"]["customerCount"] == 1


async def test_pages_and_time_range(client: Client) -> None:
    for i in range(5):
        await create_customer(client, f"C{i}")
    first = (await client.get("/v1/audit-logs", params={"limit": 3})).json()
    second = (await client.get("/v1/audit-logs", params={"limit": 3, "cursor": first["nextCursor"]})).json()
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 5
    assert second["nextCursor"] is None
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(minutes=5)).isoformat(), "to": (now + timedelta(minutes=5)).isoformat()}
    assert len((await client.get("/v1/audit-logs", params=window)).json()["items"]) == 5
    later = {"from": (now + timedelta(minutes=5)).isoformat()}
    assert (await client.get("/v1/audit-logs", params=later)).json()["items"] == []
    assert_problem(await client.get("/v1/audit-logs", params={"cursor": "x"}), 422, "VALIDATION")


async def test_no_api_edits_the_log(client: Client) -> None:
    await create_customer(client, "C1")
    for method in ("PUT", "PATCH", "DELETE"):
        response = await client.request(method, "/v1/audit-logs")
        assert response.status_code == 405, (method, response.text)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE profile.audit_logs SET actor_id = 'someone-else'",
        "DELETE FROM profile.audit_logs",
        "TRUNCATE profile.audit_logs",
    ],
)
async def test_the_database_refuses_to_edit_the_log(client: Client, db: asyncpg.Connection, statement: str) -> None:
    await create_customer(client, "C1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM profile.audit_logs") == 1


async def test_backup_points_cannot_be_edited(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    assert (await client.post("/v1/backups", json={})).status_code == 201
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="immutable"):
        await db.execute("UPDATE profile.backup_customers SET customer_name = 'forged'")


async def test_renames_through_patch_are_logged_with_their_application(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    assert (await patch_customer(client, "C1", {"customerName": "李四"}, 1)).status_code == 200
    entry = (await client.get("/v1/audit-logs", params={"eventType": "CUSTOMER_UPDATED"})).json()["items"][0]
    application_id = await db.fetchval("SELECT application_id FROM profile.name_change_applications")
    assert entry["applicationId"] == application_id
    assert (entry["oldValue"]["customerName"], entry["newValue"]["customerName"]) == ("张三", "李四")

"""Customer profiles on real PostgreSQL: listing, optimistic locking, validation, recycle bin."""

from __future__ import annotations

import json

import asyncpg
import pytest

from tests.ledger_support import (
    Client,
    assert_problem,
    audit_rows,
    counts,
    create_customer,
    patch_customer,
    seed_customers,
)


async def test_list_pages_with_a_stable_cursor_and_filters(client: Client, db: asyncpg.Connection) -> None:
    await seed_customers(db, 25)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/customers", params=params)).json()
        seen += [c["customerId"] for c in page["items"]]
        if len(seen) == 10:
            # A customer created mid-way (newest created_at) appears at the end, never shifts a page.
            await create_customer(client, "Z-NEW")
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"C{i:06d}" for i in range(1, 26)] + ["Z-NEW"]

    commercial = (await client.get("/v1/customers", params={"accountType": "commercial", "limit": 200})).json()
    assert {c["accountType"] for c in commercial["items"]} == {"commercial"}
    assert len(commercial["items"]) == 9  # g % 3 == 1 for g in 1..25
    prefix = (await client.get("/v1/customers", params={"namePrefix": "客户2"})).json()
    assert sorted(c["customerName"] for c in prefix["items"]) == sorted(["客户2", *(f"客户{i}" for i in range(20, 26))])
    contains = (await client.get("/v1/customers", params={"nameContains": "户1"})).json()
    assert len(contains["items"]) == 11  # 客户1, 客户10..19
    assert (await client.get("/v1/customers", params={"status": "suspended"})).json() == {
        "items": [],
        "nextCursor": None,
    }
    # Wildcards in a filter are literal characters.
    assert (await client.get("/v1/customers", params={"nameContains": "%"})).json()["items"] == []


async def test_list_refuses_bad_limits_cursors_and_filters(client: Client) -> None:
    for params in ({"limit": "0"}, {"limit": "201"}, {"status": "sleeping"}, {"cursor": "not-a-cursor"}):
        body = assert_problem(await client.get("/v1/customers", params=params), 422, "VALIDATION")
        assert body["errors"], body
    await create_customer(client, "C1")
    await create_customer(client, "C2")
    cursor = (await client.get("/v1/customers", params={"limit": 1})).json()["nextCursor"]
    # A cursor only continues the listing it came from.
    other = await client.get("/v1/customers", params={"limit": 1, "cursor": cursor, "accountType": "industrial"})
    assert assert_problem(other, 422, "VALIDATION")["errors"][0]["key"] == "cursor"


async def test_patch_needs_if_match_and_refuses_a_stale_version(client: Client) -> None:
    await create_customer(client, "C1")
    assert_problem(await patch_customer(client, "C1", {"status": "suspended"}, None), 428, "PRECONDITION_REQUIRED")
    malformed = await patch_customer(client, "C1", {"status": "suspended"}, "version-one")
    assert assert_problem(malformed, 422, "VALIDATION")["errors"][0]["key"] == "If-Match"

    first = await patch_customer(client, "C1", {"status": "suspended"}, 1)
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'
    assert (first.json()["status"], first.json()["version"]) == ("suspended", 2)

    stale = await patch_customer(client, "C1", {"status": "inactive"}, 1)
    body = assert_problem(stale, 412, "PRECONDITION_FAILED")
    assert body["detail"].startswith("profile C1 is at version 2")
    assert (await client.get("/v1/customers/C1")).json()["status"] == "suspended"
    weak = await patch_customer(client, "C1", {"status": "active"}, 'W/"2"')
    assert weak.status_code == 200
    assert_problem(await patch_customer(client, "NOPE", {"status": "active"}, 1), 404, "PROFILE_NOT_FOUND")


async def test_patch_with_nothing_new_changes_nothing(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    response = await patch_customer(client, "C1", {"customerName": "张三", "status": "active"}, 1)
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert [r["event_type"] for r in await audit_rows(db, "C1")] == ["CUSTOMER_CREATED"]


async def test_patch_renaming_takes_the_name_change_path(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    response = await patch_customer(client, "C1", {"customerName": "李四", "changeReason": "更正错字"}, 1)
    assert response.status_code == 200, response.text
    assert (response.json()["customerName"], response.json()["version"]) == ("李四", 2)

    assert await counts(db, "C1") == {"history": 1, "outbox": 1, "completed": 1}
    history = (await client.get("/v1/customers/C1/name-history")).json()
    assert [(h["oldName"], h["newName"], h["profileVersion"], h["changeReason"]) for h in history] == [
        ("张三", "李四", 2, "更正错字")
    ]
    application = await db.fetchrow("SELECT * FROM profile.name_change_applications WHERE customer_id='C1'")
    assert (application["origin"], application["status"], application["profile_version"]) == (
        "profile_edit",
        "completed",
        1,
    )
    outbox = await db.fetchrow("SELECT payload::text AS payload, headers::text AS headers FROM profile.outbox")
    payload, headers = json.loads(outbox["payload"]), json.loads(outbox["headers"])
    assert headers["ce_type"] == "customer.profile.name-changed.v1"
    assert (payload["oldName"], payload["newName"], payload["profileVersion"]) == ("张三", "李四", 2)
    assert payload["applicationId"] == application["application_id"]


async def test_contact_changes_are_logged_without_their_values(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    changes = {"contactPhone": "+86 139 0000 1111", "contactEmail": None, "accountType": "commercial"}
    response = await patch_customer(client, "C1", changes, 1)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["contactPhone"], body["contactEmail"], body["accountType"]) == (
        "+86 139 0000 1111",
        None,
        "commercial",
    )
    # Contact data is not synced: no event, no history.
    assert await counts(db, "C1") == {"history": 0, "outbox": 0, "completed": 0}
    update = (await audit_rows(db, "C1"))[-1]
    assert update["event_type"] == "CUSTOMER_UPDATED"
    new_value = json.loads(update["new"])
    assert new_value["changedFields"] == ["contactPhone", "contactEmail", "accountType"]
    assert json.loads(update["old"])["accountType"] == "residential"
    assert new_value["accountType"] == "commercial"
    every_entry = " ".join(f"{r['old']} {r['new']}" for r in await audit_rows(db, "C1"))
    for secret in ("138 0013 8000", "139 0000 1111", "zhang@example.com", "中关村"):
        assert secret not in every_entry


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"customerName": ""}, "customerName"),
        ({"customerName": None}, "customerName"),
        ({"customerName": "x" * 101}, "customerName"),
        ({"contactPhone": "call me"}, "contactPhone"),
        ({"contactEmail": "no-at-sign"}, "contactEmail"),
        ({"accountType": "martian"}, "accountType"),
        ({"status": "deleted"}, "status"),
        ({"version": 7}, "version"),
    ],
)
async def test_invalid_edits_are_422_with_the_field(client: Client, changes: dict[str, object], key: str) -> None:
    await create_customer(client, "C1")
    body = assert_problem(await patch_customer(client, "C1", changes, 1), 422, "VALIDATION")
    assert [e["key"] for e in body["errors"]] == [key]


async def test_create_reports_field_errors(client: Client) -> None:
    response = await client.post(
        "/v1/customers", json={"customerId": "C 1", "customerName": "x", "accountType": "residential"}
    )
    body = assert_problem(response, 422, "VALIDATION")
    assert body["errors"][0]["key"] == "customerId"
    blank = await client.post(
        "/v1/customers", json={"customerId": "C1", "customerName": "  ", "accountType": "residential"}
    )
    assert assert_problem(blank, 422, "VALIDATION")["errors"][0]["key"] == "customerName"


async def test_recycle_bin_round_trip(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1")
    await create_customer(client, "C2", "李四")
    assert_problem(await client.delete("/v1/customers/C1", headers={"If-Match": '"7"'}), 412, "PRECONDITION_FAILED")

    deleted = await client.delete("/v1/customers/C1", headers={"If-Match": '"1"'})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["version"] == 2
    assert deleted.json()["deletedAt"] is not None
    assert_problem(await client.get("/v1/customers/C1"), 404, "PROFILE_NOT_FOUND")
    assert_problem(await client.delete("/v1/customers/C1"), 404, "PROFILE_NOT_FOUND")
    assert [c["customerId"] for c in (await client.get("/v1/customers")).json()["items"]] == ["C2"]
    # Deleted customers cannot be renamed or applied for, and their id stays taken.
    assert_problem(await patch_customer(client, "C1", {"status": "active"}, 2), 404, "PROFILE_NOT_FOUND")
    submit = await client.post(
        "/v1/name-change-applications", json={"customerId": "C1", "newName": "王五", "reason": "过户"}
    )
    assert_problem(submit, 404, "PROFILE_NOT_FOUND")
    duplicate = await client.post(
        "/v1/customers", json={"customerId": "C1", "customerName": "王五", "accountType": "residential"}
    )
    assert_problem(duplicate, 409, "CUSTOMER_EXISTS")

    bin_page = (await client.get("/v1/recycle-bin")).json()
    assert [(c["customerId"], c["version"]) for c in bin_page["items"]] == [("C1", 2)]
    assert bin_page["items"][0]["purgeAfter"] > bin_page["items"][0]["deletedAt"]

    restored = await client.post("/v1/customers/C1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.headers["etag"] == '"3"'
    assert (restored.json()["customerName"], restored.json()["contactPhone"]) == ("张三", "+86 138 0013 8000")
    assert (await client.get("/v1/recycle-bin")).json()["items"] == []
    assert_problem(await client.post("/v1/customers/C1/restore"), 409, "NOT_IN_RECYCLE_BIN")
    assert_problem(await client.post("/v1/customers/NOPE/restore"), 404, "PROFILE_NOT_FOUND")
    events = [r["event_type"] for r in await audit_rows(db, "C1")]
    assert events == ["CUSTOMER_CREATED", "CUSTOMER_DELETED", "CUSTOMER_RESTORED"]


async def test_recycle_bin_pages_newest_deletion_first(client: Client, db: asyncpg.Connection) -> None:
    await seed_customers(db, 5)
    for customer_id in ("C000002", "C000004", "C000001"):
        assert (await client.delete(f"/v1/customers/{customer_id}")).status_code == 200
    first = (await client.get("/v1/recycle-bin", params={"limit": 2})).json()
    second = (await client.get("/v1/recycle-bin", params={"limit": 2, "cursor": first["nextCursor"]})).json()
    assert [c["customerId"] for c in first["items"] + second["items"]] == ["C000001", "C000004", "C000002"]
    assert second["nextCursor"] is None

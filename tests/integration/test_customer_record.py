"""Seed 004's customer record over the API on the real database: every field, its rules, the code's
uniqueness, who created and changed it, the list filters, personal data sealed, and backups that
give the whole record back."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from libs.kit.tokens import Role
from tests.auth_support import bearer
from tests.ledger_support import (
    Client,
    assert_problem,
    audit_rows,
    create_customer,
    customer_body,
    patch_customer,
)

TAX_NUMBER = "91110108MA01ABCDE1"
EVERY_FIELD: dict[str, Any] = {
    "customerCode": "CUST-2025-001",
    "customerType": "vip",
    "contactPerson": "王五",
    "company": "北京某某电力设备有限公司",
    "industry": "manufacturing",
    "region": "华北",
    "creditLimit": "50000.00",
    "salesPerson": "赵经理",
    "taxNumber": TAX_NUMBER,
    "remark": "重点客户 按季度结算",
}
CHANGED_EVERY_FIELD: dict[str, Any] = {
    "customerName": "李四",
    "accountType": "commercial",
    "status": "suspended",
    "contactPhone": "+86 139 0000 1111",
    "contactEmail": "li.si@example.com",
    "contactAddress": "上海市浦东新区世纪大道 100 号",
    "customerCode": "CUST-2025-999",
    "customerType": "regular",
    "contactPerson": "钱六",
    "company": "上海某某能源有限公司",
    "industry": "energy",
    "region": "华东",
    "creditLimit": "1.50",
    "salesPerson": "孙经理",
    "taxNumber": "91310115MA1K4XYZ2B",
    "remark": "迁址",
}
RECORD_FIELDS = (
    "customerName",
    "accountType",
    "status",
    "contactPhone",
    "contactEmail",
    "contactAddress",
    *EVERY_FIELD,
)


def record(customer: dict[str, Any]) -> dict[str, Any]:
    return {field: customer[field] for field in RECORD_FIELDS}


async def test_create_with_every_field_made_by_the_token_subject(client: Client, db: asyncpg.Connection) -> None:
    response = await client.post(
        "/v1/customers", json=customer_body("C1", **EVERY_FIELD), headers=bearer(Role.OPERATOR, subject="alice")
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert {k: created[k] for k in EVERY_FIELD} == EVERY_FIELD
    assert (created["createdBy"], created["updatedBy"], created["version"]) == ("alice", "alice", 1)
    assert created["creditLimit"] == "50000.00"  # a string with two places, never a float
    fetched = (await client.get("/v1/customers/C1")).json()
    assert fetched == created

    # The tax number is sealed like the contact data: no plaintext in the row, the version or the log.
    row = await db.fetchrow("SELECT * FROM profile.customer_profiles WHERE customer_id = 'C1'")
    assert row is not None
    assert "tax_number" not in row
    assert TAX_NUMBER.encode() not in bytes(row["tax_number_encrypted"])
    assert row["credit_limit"] == pytest.approx(50000)
    assert str(row["credit_limit"]) == "50000.00"
    dump = str([dict(r) for r in await db.fetch("SELECT * FROM profile.customer_versions")])
    assert TAX_NUMBER not in dump
    log = str([dict(r) for r in await audit_rows(db, "C1")])
    assert TAX_NUMBER not in log
    assert "taxNumber" in log  # named as changed, without its value


async def test_defaults_and_the_body_cannot_name_who_made_the_change(client: Client) -> None:
    plain = await create_customer(client, "C2")
    assert (plain["customerCode"], plain["customerType"], plain["creditLimit"]) == ("C2", "regular", "0.00")
    assert (plain["createdBy"], plain["updatedBy"]) == ("test-admin", "test-admin")
    for field in ("createdBy", "updatedBy"):
        response = await client.post("/v1/customers", json=customer_body("C3", **{field: "mallory"}))
        body = assert_problem(response, 422, "VALIDATION")
        assert body["errors"][0]["key"] == field
        response = await patch_customer(client, "C2", {field: "mallory"}, 1)
        assert assert_problem(response, 422, "VALIDATION")["errors"][0]["key"] == field


async def test_the_code_is_unique_among_live_and_recycled_customers(client: Client) -> None:
    await create_customer(client, "C1", customerCode="K-1")
    duplicate = await client.post("/v1/customers", json=customer_body("C2", customerCode="K-1"))
    body = assert_problem(duplicate, 409, "CUSTOMER_CODE_EXISTS")
    assert "K-1" in body["detail"]
    assert (await client.get("/v1/customers/C2")).status_code == 404  # nothing written

    assert (await client.delete("/v1/customers/C1")).status_code == 200
    assert_problem(
        await client.post("/v1/customers", json=customer_body("C2", customerCode="K-1")), 409, "CUSTOMER_CODE_EXISTS"
    )
    # A customer without a code has its id as code, which is unique too.
    await create_customer(client, "C2", customerCode="C3")
    assert_problem(await client.post("/v1/customers", json=customer_body("C3")), 409, "CUSTOMER_CODE_EXISTS")
    # An edit to a taken code is refused and changes nothing.
    await create_customer(client, "C4")
    assert_problem(await patch_customer(client, "C4", {"customerCode": "K-1"}, 1), 409, "CUSTOMER_CODE_EXISTS")
    assert (await client.get("/v1/customers/C4")).json()["version"] == 1
    # The id conflict still says so.
    assert_problem(
        await client.post("/v1/customers", json=customer_body("C4", customerCode="K-9")), 409, "CUSTOMER_EXISTS"
    )


@pytest.mark.parametrize("limit", ["-1", "-0.01", "1.005", "1e5", "abc", "10000000000000", "01.00", "", 100, 1.5])
async def test_an_invalid_credit_limit_is_422(client: Client, limit: Any) -> None:
    response = await client.post("/v1/customers", json=customer_body("C1", creditLimit=limit))
    body = assert_problem(response, 422, "VALIDATION")
    assert body["errors"][0]["key"] == "creditLimit", body
    assert (await client.get("/v1/customers/C1")).status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customerCode", "has space"),
        ("customerType", "VIP"),
        ("taxNumber", "91110108;DROP"),
        ("company", "   "),
        ("remark", "x" * 2001),
        ("contactPerson", "p" * 101),
    ],
)
async def test_record_rules(client: Client, field: str, value: str) -> None:
    body = assert_problem(
        await client.post("/v1/customers", json=customer_body("C1", **{field: value})), 422, "VALIDATION"
    )
    assert body["errors"][0]["key"] == field
    assert "91110108" not in str(body)  # a refused tax number is not echoed


async def test_an_edit_of_the_record_is_made_by_its_editor(client: Client, db: asyncpg.Connection) -> None:
    await create_customer(client, "C1", **EVERY_FIELD)
    response = await client.patch(
        "/v1/customers/C1",
        json={"creditLimit": "80000", "company": None, "region": "华南", "taxNumber": "91440300MA5FXXXX1Q"},
        headers={"If-Match": '"1"', **bearer(Role.OPERATOR, subject="bob")},
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["creditLimit"], edited["company"], edited["region"]) == ("80000.00", None, "华南")
    assert (edited["createdBy"], edited["updatedBy"], edited["version"]) == ("test-admin", "bob", 2)
    assert response.headers["etag"] == '"2"'
    entry = (await audit_rows(db, "C1"))[-1]
    assert entry["actor_id"] == "bob"
    assert '"changedFields": ["company", "region", "creditLimit", "taxNumber"]' in entry["new"]
    assert "91440300" not in entry["new"]
    assert TAX_NUMBER not in str(entry["old"])
    assert_problem(await patch_customer(client, "C1", {"creditLimit": "-5"}, 2), 422, "VALIDATION")


async def test_list_filters_by_code_company_industry_region_and_sales_person(client: Client) -> None:
    await create_customer(
        client,
        "C1",
        customerCode="A-1",
        company="北京电力设备厂",
        industry="manufacturing",
        region="华北",
        salesPerson="赵",
    )
    await create_customer(
        client, "C2", customerCode="A-2", company="上海能源", industry="energy", region="华东", salesPerson="钱"
    )
    await create_customer(
        client, "C3", customerCode="A-3", company="北京能源集团", industry="energy", region="华北", salesPerson="赵"
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/customers", params=params)
        assert response.status_code == 200, response.text
        return [c["customerId"] for c in response.json()["items"]]

    assert await ids(customerCode="A-2") == ["C2"]
    assert await ids(company="北京") == ["C1", "C3"]
    assert await ids(industry="energy") == ["C2", "C3"]
    assert await ids(region="华北") == ["C1", "C3"]
    assert await ids(salesPerson="赵") == ["C1", "C3"]
    assert await ids(salesPerson="赵", industry="energy", region="华北") == ["C3"]
    assert await ids(company="%") == []  # a wildcard is a character, not a pattern
    first = (await client.get("/v1/customers", params={"region": "华北", "limit": 1})).json()
    second = await client.get("/v1/customers", params={"region": "华北", "cursor": first["nextCursor"]})
    assert [c["customerId"] for c in second.json()["items"]] == ["C3"]


async def test_backup_then_change_every_field_then_restore_gives_the_record_back(
    client: Client, db: asyncpg.Connection
) -> None:
    original = await create_customer(client, "C1", **EVERY_FIELD)
    backup = (await client.post("/v1/backups", json={"label": "before"})).json()["backupId"]
    stored = await db.fetchrow("SELECT * FROM profile.backup_customers WHERE customer_id = 'C1'")
    assert stored is not None
    assert TAX_NUMBER.encode() not in bytes(stored["tax_number_encrypted"])

    changed = await patch_customer(client, "C1", CHANGED_EVERY_FIELD, 1)
    assert changed.status_code == 200, changed.text
    assert all(changed.json()[k] != original[k] for k in RECORD_FIELDS), "every field changed"

    dry = (await client.post(f"/v1/backups/{backup}/restore", json={"customerId": "C1", "dryRun": True})).json()
    assert set(dry["differences"][0]["changedFields"]) == set(RECORD_FIELDS)
    restored = await client.post(f"/v1/backups/{backup}/restore", json={"customerId": "C1"})
    assert restored.status_code == 200, restored.text
    back = (await client.get("/v1/customers/C1")).json()
    for field in RECORD_FIELDS:
        assert back[field] == original[field], field
    assert (back["version"], back["createdBy"], back["updatedBy"]) == (3, "test-admin", "test-admin")
    # The restore's rename reached the outbox like any other; the restore is version 3 in the history.
    assert await db.fetchval("SELECT count(*) FROM profile.outbox WHERE aggregate_id = 'C1'") == 2
    kinds = await db.fetch(
        "SELECT version, change_kind FROM profile.customer_versions WHERE customer_id='C1' ORDER BY version"
    )
    assert [(r["version"], r["change_kind"]) for r in kinds] == [(1, "create"), (2, "edit"), (3, "backup_restore")]


async def test_a_whole_ledger_restore_swaps_codes_and_reports_a_code_held_by_another(
    client: Client, db: asyncpg.Connection
) -> None:
    await create_customer(client, "A", customerCode="X")
    await create_customer(client, "B", customerCode="Y")
    await create_customer(client, "C", customerCode="Z")
    backup = (await client.post("/v1/backups", json={})).json()["backupId"]
    # A and B swap their codes (through a free one); C gives Z up and a new customer takes it.
    assert (await patch_customer(client, "A", {"customerCode": "TMP"}, 1)).status_code == 200
    assert (await patch_customer(client, "B", {"customerCode": "X"}, 1)).status_code == 200
    assert (await patch_customer(client, "A", {"customerCode": "Y"}, 2)).status_code == 200
    assert (await patch_customer(client, "C", {"customerCode": "W"}, 1)).status_code == 200
    await create_customer(client, "D", customerCode="Z")

    # One customer: the conflict is the answer.
    assert_problem(
        await client.post(f"/v1/backups/{backup}/restore", json={"customerId": "C"}), 409, "CUSTOMER_CODE_EXISTS"
    )
    report = (await client.post(f"/v1/backups/{backup}/restore", json={})).json()
    # D, created after the backup, goes to the recycle bin but keeps Z: C stays as it is, reported.
    assert report["conflicts"] == [{"customerId": "C", "customerCode": "Z", "heldBy": "D"}]
    codes = {
        r["customer_id"]: r["customer_code"]
        for r in await db.fetch("SELECT customer_id, customer_code FROM profile.customer_profiles")
    }
    assert codes == {"A": "X", "B": "Y", "C": "W", "D": "Z"}
    assert (await client.get("/v1/customers/D")).status_code == 404  # in the recycle bin

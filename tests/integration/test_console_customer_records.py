"""The console's customer record pages, server-side on the real database: the new and edit forms
(refusals in words with what was typed), the detail page, search filters, the versions, a version
with its difference to the current one (personal data hidden from a viewer), and a rollback
through its confirmation page, written under the signed-in person."""

from __future__ import annotations

import html
from typing import Any

import asyncpg

from libs.kit.tokens import Role
from tests.console_support import (
    Client,
    api,
    confirm_redirect,
    console_client,
    create_customer,
    csrf_of,
    hidden_fields,
)
from tests.ledger_support import RECORD

TAX = "91110108MA01CONS01"


def _form(page: str, **typed: str) -> dict[str, Any]:
    """The values a browser would post from a record form, with ``typed`` changed."""
    fields: dict[str, Any] = hidden_fields(page)
    for name in ("customerId", *RECORD, "changeReason"):  # the text inputs; the selects and the textarea below
        marker = f'name="{name}" value="'
        if marker in page:
            fields[name] = html.unescape(page.split(marker, 1)[1].split('"', 1)[0])
    for select in ("accountType", "status"):
        if f'name="{select}"' in page:
            block = page.split(f'name="{select}"', 1)[1].split("</select>", 1)[0]
            fields[select] = block.split(" selected>", 1)[0].rsplit('value="', 1)[1].split('"', 1)[0]
    fields["remark"] = html.unescape(page.split('name="remark"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0])
    fields.update(typed)
    return fields


async def _create(client: Client, **typed: str) -> Any:
    page = await client.get("/console/customers/new")
    assert page.status_code == 200, page.text
    return await client.post("/console/customers/new", data=_form(page.text, **typed))


async def _changed_once(client: Client, customer_id: str, **changes: Any) -> None:
    """Customer ``customer_id`` (张三, with tax number ``TAX``) created and then changed by ``changes``,
    through the JSON API: version 1 and version 2."""
    await create_customer(client, customer_id, taxNumber=TAX)
    changed = await api(client, "PATCH", f"/v1/customers/{customer_id}", json=changes, headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text


async def test_new_and_edit_forms_write_the_record_under_the_person(database_url: str) -> None:
    async with console_client(database_url, Role.OPERATOR, subject="olga") as client:
        created = await _create(
            client,
            customerId="C-REC-1",
            customerName="张三",
            customerCode="K-REC-1",
            company="甲公司",
            region="华北",
            creditLimit="1200.50",
            taxNumber=TAX,
            remark="首次录入",
        )
        assert created.status_code == 303, created.text
        assert created.headers["location"] == "/console/customers/C-REC-1?notice=created"
        detail = await client.get(created.headers["location"])
        assert detail.status_code == 200
        for shown in ("K-REC-1", "甲公司", "华北", "1200.50", TAX, "首次录入", "by olga", "The customer is created"):
            assert shown in detail.text, shown
        customer = (await api(client, "GET", "/v1/customers/C-REC-1")).json()
        assert (customer["createdBy"], customer["creditLimit"], customer["taxNumber"]) == ("olga", "1200.50", TAX)

        # Refusals come back on the form, in words, with what was typed; nothing is written.
        refused = await _create(client, customerId="C-REC-2", customerName="李四", customerCode="K-REC-1")
        assert refused.status_code == 409
        assert "Nothing was saved" in refused.text
        assert "customer code K-REC-1 is used by another customer" in refused.text
        assert 'value="C-REC-2"' in refused.text
        bad = await _create(client, customerId="C-REC-2", customerName="李四", creditLimit="-1", taxNumber="x;y")
        assert bad.status_code == 422
        assert "Credit limit: an amount of 0 or more" in bad.text
        assert (await api(client, "GET", "/v1/customers/C-REC-2")).status_code == 404

        form = await client.get("/console/customers/C-REC-1/edit")
        assert form.status_code == 200
        assert hidden_fields(form.text)["version"] == "1"
        edited = await client.post(
            "/console/customers/C-REC-1/edit",
            data=_form(form.text, customerName="张三丰", region="", creditLimit="80000", changeReason="更名"),
        )
        assert edited.status_code == 303, edited.text
        assert edited.headers["location"] == "/console/customers/C-REC-1?notice=updated"
        customer = (await api(client, "GET", "/v1/customers/C-REC-1")).json()
        assert (customer["customerName"], customer["region"], customer["creditLimit"]) == ("张三丰", None, "80000.00")
        assert (customer["version"], customer["updatedBy"], customer["taxNumber"]) == (2, "olga", TAX)
        history = (await api(client, "GET", "/v1/customers/C-REC-1/name-history")).json()
        assert history[0]["changeReason"] == "更名"
        # The same form posted again is stale: 412 on the form, nothing written.
        stale = await client.post("/console/customers/C-REC-1/edit", data=_form(form.text, remark="晚了"))
        assert stale.status_code == 412
        assert "is at version 2, If-Match names 1" in stale.text

        found = await client.get("/console/customers", params={"company": "甲", "customerCode": "K-REC-1"})
        assert "C-REC-1" in found.text
        assert "K-REC-1" in found.text


async def test_viewers_read_versions_without_personal_values_and_cannot_change(database_url: str) -> None:
    async with console_client(database_url, Role.VIEWER, subject="vera") as client:
        await _changed_once(client, "C-VER-1", taxNumber=None, company="乙公司")
        versions = await client.get("/console/customers/C-VER-1/versions")
        assert versions.status_code == 200
        assert 'data-version="2"' in versions.text
        assert "Company, Tax number" in versions.text
        one = await client.get("/console/customers/C-VER-1/versions/1")
        assert one.status_code == 200
        assert TAX not in one.text
        assert "personal data: values shown to operators and admins" in one.text
        assert 'data-field="company"' in one.text
        assert "Roll back to version 1" not in one.text
        assert (await client.get("/console/customers/C-VER-1/versions/1/rollback")).status_code == 403
        assert (await client.get("/console/customers/new")).status_code == 403
        detail = await client.get("/console/customers/C-VER-1")
        assert "/edit" not in detail.text


async def test_rollback_through_its_confirmation_page(database_url: str, db: asyncpg.Connection) -> None:
    async with console_client(database_url, Role.OPERATOR, subject="otto") as client:
        await _changed_once(client, "C-RB-1", customerName="李四", taxNumber=None)
        version = await client.get("/console/customers/C-RB-1/versions/1")
        assert TAX in version.text  # an operator reads past personal data
        assert 'href="/console/customers/C-RB-1/versions/1/rollback"' in version.text
        rolled_back = "/console/customers/C-RB-1?notice=rolled-back&n=1"
        await confirm_redirect(
            client,
            "/console/customers/C-RB-1/versions/1/rollback",
            "Roll 李四 (C-RB-1) back to version 1?",
            rolled_back,
        )
        page = await client.get(rolled_back)
        assert "Rolled back: a new version with the content of version 1." in page.text
        customer = (await api(client, "GET", "/v1/customers/C-RB-1")).json()
        assert (customer["customerName"], customer["taxNumber"], customer["version"]) == ("张三", TAX, 3)
        assert customer["updatedBy"] == "otto"
        log = await client.get("/console/audit", params={"customerId": "C-RB-1", "actorId": "otto"})
        assert "CUSTOMER_ROLLED_BACK" in log.text
        # Nothing left to roll back to: the page says so and offers no button.
        same = await client.get("/console/customers/C-RB-1/versions/1/rollback")
        assert "Nothing to roll back" in same.text
        assert "<form" not in same.text.split("<main", 1)[1]
        # A stale confirmation (someone changed the customer meanwhile) is refused, nothing written.
        page = await client.get("/console/customers/C-RB-1/versions/2/rollback")
        await api(client, "PATCH", "/v1/customers/C-RB-1", json={"remark": "x"}, headers={"If-Match": '"3"'})
        stale = await client.post(
            "/console/customers/C-RB-1/versions/2/rollback", data={"csrf": csrf_of(page.text), "version": "3"}
        )
        assert stale.status_code == 412
        assert (await api(client, "GET", "/v1/customers/C-RB-1")).json()["version"] == 4
        assert await db.fetchval("SELECT count(*) FROM profile.customer_versions WHERE customer_id = 'C-RB-1'") == 4


async def test_a_restore_confirmation_lists_code_conflicts_and_the_bin_links_versions(database_url: str) -> None:
    async with console_client(database_url, Role.ADMIN, subject="ada") as client:
        await create_customer(client, "C-CF-1", customerCode="X")
        backup = (await api(client, "POST", "/v1/backups", json={})).json()["backupId"]
        moved = await api(
            client, "PATCH", "/v1/customers/C-CF-1", json={"customerCode": "Y"}, headers={"If-Match": '"1"'}
        )
        assert moved.status_code == 200
        await create_customer(client, "C-CF-2", "李四", customerCode="X")
        page = await client.get(f"/console/backups/{backup}/restore")
        assert page.status_code == 200, page.text
        assert 'data-conflict="C-CF-1"' in page.text
        assert "Held by" in page.text
        assert (await api(client, "DELETE", "/v1/customers/C-CF-2")).status_code == 200
        recycled = await client.get("/console/recycle-bin")
        assert 'href="/console/customers/C-CF-2/versions"' in recycled.text

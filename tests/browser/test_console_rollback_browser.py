"""An operator creates a customer with the console's form, and rolls another one back from its version
history, in headless Chromium against the whole system: the versions list, a version with its
difference to the current one, the rollback's confirmation page (a dry run listing every field),
and afterwards the rolled-back name at CRM, CMS and CSS. Screenshots under
``<artifacts>/browser/<test>/``."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from libs.kit.tokens import Role
from tests.auth_support import token
from tests.browser.conftest import SYSTEMS, ConsoleSystem, Screenshots

pytestmark = pytest.mark.timeout(180)
TAX = "91110108MA01BRWS01"


def _sign_in(page: Any, subject: str) -> None:
    page.goto("/console/")
    page.get_by_label("Bearer token").fill(token(Role.OPERATOR, subject=subject))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/?$"))


def _held_everywhere(system: ConsoleSystem, customer_id: str, name: str, version: int) -> bool:
    for code in SYSTEMS:
        held = system.api.get(f"{system.stubs_url}/_customers", params={"system": code}).json()
        state = held.get(customer_id)
        if state is None or (state["customerName"], state["profileVersion"]) != (name, version):
            return False
    return True


def test_create_a_customer_with_the_form(page: Any, shots: Screenshots) -> None:
    _sign_in(page, "olga")
    page.get_by_role("navigation", name="Console sections").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="New customer…").click()
    new_id = f"NEW-{uuid.uuid4().hex[:6].upper()}"
    page.get_by_label("Customer id").fill(new_id)
    page.get_by_label("Name", exact=True).fill("赵六")
    page.get_by_label("Customer code").fill(f"K-{new_id}")
    page.get_by_label("Company").fill("广州某某贸易有限公司")
    page.get_by_label("Credit limit").fill("-5")
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("alert")).to_contain_text("Credit limit: an amount of 0 or more")
    expect(page.get_by_label("Customer id")).to_have_value(new_id)  # what was typed stays
    shots("new-customer-refused")
    page.get_by_label("Credit limit").fill("12000.50")
    page.get_by_role("button", name="Create customer").click()
    page.wait_for_url(re.compile(rf"/console/customers/{new_id}\?notice=created$"))
    expect(page.get_by_role("status")).to_contain_text("The customer is created")
    expect(page.locator("dl.facts")).to_contain_text("12000.50")
    expect(page.locator("dl.facts")).to_contain_text("by olga")
    shots("new-customer-created")


def test_roll_back_from_the_version_history(page: Any, shots: Screenshots, console_system: ConsoleSystem) -> None:
    system = console_system
    customer_id = f"RB-{uuid.uuid4().hex[:8].upper()}"
    created = system.api.post(
        f"{system.profile_url}/v1/customers",
        json={
            "customerId": customer_id,
            "customerName": "张三",
            "accountType": "commercial",
            "company": "北京某某电力设备有限公司",
            "region": "华北",
            "creditLimit": "50000.00",
            "taxNumber": TAX,
        },
    )
    assert created.status_code == 201, created.text
    for version, changes in (
        (1, {"customerName": "李四", "creditLimit": "80000.00", "region": "华南"}),
        (2, {"customerName": "王五", "taxNumber": None, "company": "上海某某能源有限公司"}),
    ):
        edited = system.api.patch(
            f"{system.profile_url}/v1/customers/{customer_id}", json=changes, headers={"If-Match": f'"{version}"'}
        )
        assert edited.status_code == 200, edited.text

    _sign_in(page, "olga")
    page.goto(f"/console/customers/{customer_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("王五")
    page.get_by_role("link", name="Versions").click()
    page.wait_for_url(re.compile(rf"/console/customers/{customer_id}/versions$"))
    rows = page.locator("tbody tr[data-version]")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("current")
    shots("versions")

    page.get_by_role("link", name="Version 2", exact=True).click()
    page.wait_for_url(re.compile(rf"/console/customers/{customer_id}/versions/2$"))
    differences = page.locator("table.differences")
    expect(differences.locator('tr[data-field="customerName"]')).to_contain_text("李四")
    expect(differences.locator('tr[data-field="customerName"]')).to_contain_text("王五")
    expect(differences.locator('tr[data-field="taxNumber"]')).to_contain_text(TAX)  # an operator reads it
    shots("version-2-and-its-difference")

    page.get_by_role("link", name="Roll back to version 2…").click()
    page.wait_for_url(re.compile(rf"/console/customers/{customer_id}/versions/2/rollback$"))
    expect(page.get_by_role("heading", level=2)).to_contain_text(f"Roll 王五 ({customer_id}) back to version 2?")
    expect(page.locator("section.confirm")).to_contain_text("The name changes from 王五 to 李四")
    expect(page.locator("table.differences tbody tr")).to_have_count(3)  # name, company, tax number
    shots("rollback-confirmation")
    page.get_by_role("button", name="Roll back to version 2").click()
    page.wait_for_url(re.compile(rf"/console/customers/{customer_id}\?notice=rolled-back&n=2$"))
    expect(page.get_by_role("status")).to_contain_text("Rolled back: a new version with the content of version 2.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("李四")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("80000.00")
    expect(facts).to_contain_text(TAX)
    expect(facts).to_contain_text("rollback")
    shots("rolled-back")

    system.wait_for(lambda: _held_everywhere(system, customer_id, "李四", 4), "李四 at CRM, CMS and CSS, version 4")
    page.reload()
    for code in sorted(SYSTEMS):
        row = page.locator(f'tr[data-system="{code}"]')
        expect(row).to_contain_text("success")
        expect(row).to_contain_text("4")
    shots("rolled-back-name-at-every-system")

    page.get_by_role("link", name="Versions").click()
    expect(page.locator("tbody tr[data-version]").nth(0)).to_contain_text("rollback")
    expect(page.locator("tbody tr[data-version]").nth(0)).to_contain_text("olga")
    shots("versions-after-the-rollback")

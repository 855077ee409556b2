"""Operators' journeys through the admin console in real headless Chromium, against the whole system
(profile service, relay, sync-connector, stub external systems as processes; PostgreSQL; Kafka).

1. Sign in (with the keyboard), find a failed sync on the overview, retry it, see it succeed.
2. Re-drive a parked outbox entry and see the relay publish it.
3. Move a customer to the recycle bin and restore it.

Each step leaves a screenshot under ``<artifacts>/browser/<test>/``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from libs.kit.tokens import Role
from tests.auth_support import token
from tests.browser.conftest import ConsoleSystem, Screenshots, sql_value

pytestmark = pytest.mark.timeout(180)


def _customer(system: ConsoleSystem, name: str) -> str:
    customer_id = f"B-{uuid.uuid4().hex[:8].upper()}"
    body = {"customerId": customer_id, "customerName": name, "accountType": "residential"}
    response = system.api.post(f"{system.profile_url}/v1/customers", json=body)
    assert response.status_code == 201, response.text
    return customer_id


def _rename(system: ConsoleSystem, customer_id: str, new_name: str) -> None:
    response = system.api.patch(
        f"{system.profile_url}/v1/customers/{customer_id}",
        json={"customerName": new_name, "changeReason": "过户"},
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text


def _sign_in(page: Any, *roles: Role, subject: str, target: str = "/console/") -> None:
    page.goto(target)
    page.get_by_label("Bearer token").fill(token(*roles, subject=subject))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(target.split("?", maxsplit=1)[0])))


def _sql(system: ConsoleSystem, statement: str, *args: Any) -> Any:
    return sql_value(system.database_url, statement, *args)


def test_sign_in_find_a_failed_sync_retry_it_and_see_it_succeed(
    page: Any, shots: Screenshots, console_system: ConsoleSystem
) -> None:
    system = console_system
    customer_id = _customer(system, "张三")
    fault = {"system": "CRM", "mode": "status", "status": 422, "customerId": customer_id}
    assert system.api.post(f"{system.stubs_url}/_faults", json=fault).status_code == 201
    _rename(system, customer_id, "李四")

    def crm_failed() -> bool:
        records = system.api.get(
            f"{system.connector_url}/v1/sync-records", params={"customerId": customer_id, "systemCode": "CRM"}
        ).json()["items"]
        return bool(records) and records[0]["syncStatus"] == "failed"

    system.wait_for(crm_failed, "CRM to reject the change (failed)")

    # Sign in with the keyboard only: skip link first, then the labelled field and the button.
    page.goto("/console/")
    assert "/console/login" in page.url
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.get_by_label("Bearer token").focus()
    page.keyboard.insert_text(token(Role.ADMIN, subject="ada"))
    shots("sign-in")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/?$"))
    crm_failed_link = page.locator('tr[data-system="CRM"] td[data-status="failed"] a')
    crm_failed_link.wait_for()
    assert page.get_by_text("Signed in as").is_visible()
    # The overview refreshes its panels in place (the script's status line has no "UTC").
    expect(page.locator("#refresh-status")).not_to_contain_text("UTC")
    assert crm_failed_link.inner_text() == "1"
    shots("overview-with-a-failed-sync")

    crm_failed_link.click()
    row = page.locator(f'tr[data-status="failed"]:has(a:text-is("{customer_id}"))')
    row.wait_for()
    shots("failed-sync-records")
    row.get_by_role("link", name=re.compile("^Retry")).click()
    page.get_by_role("heading", name=re.compile("^Retry sync record")).wait_for()
    shots("retry-confirmation")

    assert system.api.delete(f"{system.stubs_url}/_faults").status_code == 204
    page.get_by_role("button", name=re.compile("^Retry record")).click()
    page.get_by_role("status").filter(has_text="Retry scheduled").wait_for()
    status = page.locator("#record-status")

    def succeeded() -> bool:
        page.reload()
        return bool(status.inner_text() == "success")

    system.wait_for(succeeded, "the retried record to succeed")
    assert page.locator("tbody tr", has_text="applied").count() == 1
    shots("retried-sync-succeeded")


def test_redrive_a_parked_outbox_entry(page: Any, shots: Screenshots, console_system: ConsoleSystem) -> None:
    system = console_system
    customer_id = _customer(system, "王五")
    _rename(system, customer_id, "赵六")
    statement = "SELECT status FROM profile.outbox WHERE aggregate_id = $1"
    system.wait_for(lambda: _sql(system, statement, customer_id) == "published", "the relay to publish the change")
    # Park it as the relay would after its last failed attempt (a poison row).
    entry_id = _sql(
        system,
        "UPDATE profile.outbox SET status = 'failed', attempts = 10, "
        "last_error = 'MessageSizeTooLargeError: simulated poison row' WHERE aggregate_id = $1 RETURNING id::text",
        customer_id,
    )

    _sign_in(page, Role.ADMIN, subject="ada", target=f"/console/outbox?status=failed&customerId={customer_id}")
    checkbox = page.locator(f'input[type="checkbox"][value="{entry_id}"]')
    checkbox.wait_for()
    shots("parked-entry")
    checkbox.check()
    page.get_by_role("button", name="Re-drive selected…").click()
    page.get_by_role("heading", name="Re-drive 1 outbox entry?").wait_for()
    shots("redrive-confirmation")
    page.get_by_role("button", name="Re-drive 1 entry").click()
    page.get_by_role("status").filter(has_text="Re-drove 1 outbox entry").wait_for()

    page.goto(f"/console/outbox/{entry_id}")
    entry_status = page.locator("#entry-status")

    def published() -> bool:
        page.reload()
        return bool(entry_status.inner_text() == "published")

    system.wait_for(published, "the relay to publish the re-driven entry")
    shots("redriven-entry-published")
    page.goto(f"/console/audit?eventType=OUTBOX_REDRIVEN&actorId=ada&customerId={customer_id}")
    assert page.locator("tbody tr", has_text="OUTBOX_REDRIVEN").count() == 1
    shots("redrive-audited")


def test_restore_a_customer_from_the_recycle_bin(page: Any, shots: Screenshots, console_system: ConsoleSystem) -> None:
    system = console_system
    customer_id = _customer(system, "孙七")
    _sign_in(page, Role.OPERATOR, subject="olga", target="/console/customers")
    page.get_by_label("Customer id").fill(customer_id)
    page.get_by_role("button", name="Open").click()
    page.get_by_role("heading", name=re.compile(f"孙七 .{customer_id}.")).wait_for()
    shots("customer-profile")

    page.get_by_role("link", name="Move to the recycle bin…").click()
    page.get_by_role("button", name="Move to the recycle bin").click()
    page.get_by_role("status").filter(has_text="The customer is in the recycle bin.").wait_for()
    binned = page.locator(f'tr[data-customer="{customer_id}"]')
    shots("in-the-recycle-bin")

    binned.get_by_role("link", name=re.compile("^Restore")).click()
    page.get_by_role("heading", name=f"Restore customer {customer_id} from the recycle bin?").wait_for()
    shots("restore-confirmation")
    page.get_by_role("button", name=f"Restore {customer_id}").click()
    page.get_by_role("status").filter(has_text="back out of the recycle bin").wait_for()
    assert page.get_by_role("heading", name=re.compile(f"孙七 .{customer_id}.")).is_visible()
    shots("restored-customer")

    page.goto("/console/recycle-bin")
    assert page.locator(f'tr[data-customer="{customer_id}"]').count() == 0
    events = _sql(
        system,
        "SELECT string_agg(event_type, ',' ORDER BY id) FROM profile.audit_logs "
        "WHERE customer_id = $1 AND actor_id = 'olga'",
        customer_id,
    )
    assert events == "CUSTOMER_DELETED,CUSTOMER_RESTORED"

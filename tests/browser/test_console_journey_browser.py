"""An operator follows one customer's change in headless Chromium against the whole system: CSS refuses
the change once (the stubs' fault injection, count 1) and applies it on the retry. From the console's
navigation they open the customer's journey and see the commit, the publish, both CSS attempts, the
link to the change's trace and the last hour's delivery charts. Screenshots under
``<artifacts>/browser/<test>/``."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from libs.kit.tokens import Role
from tests.auth_support import token
from tests.browser.conftest import TRACE_UI, ConsoleSystem, Screenshots, sql_value

pytestmark = pytest.mark.timeout(180)


def _css_record(system: ConsoleSystem, customer_id: str) -> dict[str, Any] | None:
    items = system.api.get(
        f"{system.connector_url}/v1/sync-records", params={"customerId": customer_id, "systemCode": "CSS"}
    ).json()["items"]
    return items[0] if items else None


def test_journey_of_a_customer_whose_css_delivery_failed_then_succeeded(
    page: Any, shots: Screenshots, console_system: ConsoleSystem
) -> None:
    system = console_system
    customer_id = f"J-{uuid.uuid4().hex[:8].upper()}"
    created = system.api.post(
        f"{system.profile_url}/v1/customers",
        json={"customerId": customer_id, "customerName": "张三", "accountType": "residential"},
    )
    assert created.status_code == 201, created.text
    fault = {"system": "CSS", "mode": "status", "status": 503, "count": 1, "customerId": customer_id}
    assert system.api.post(f"{system.stubs_url}/_faults", json=fault).status_code == 201
    renamed = system.api.patch(
        f"{system.profile_url}/v1/customers/{customer_id}",
        json={"customerName": "李四", "changeReason": "过户"},
        headers={"If-Match": '"1"'},
    )
    assert renamed.status_code == 200, renamed.text

    def css_applied_on_the_retry() -> bool:
        record = _css_record(system, customer_id)
        return record is not None and record["syncStatus"] == "success" and record["retryCount"] == 1

    system.wait_for(css_applied_on_the_retry, "CSS to refuse the change once (503) and apply it on the retry")
    traceparent = sql_value(
        system.database_url, "SELECT headers ->> 'traceparent' FROM profile.outbox WHERE aggregate_id = $1", customer_id
    )
    trace_id = traceparent.split("-")[1]

    # Sign in as a viewer, then open the journey from the navigation's lookup form.
    page.goto("/console/")
    page.get_by_label("Bearer token").fill(token(Role.VIEWER, subject="vera"))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/?$"))
    page.get_by_role("navigation", name="Console sections").get_by_role("link", name="Journey").click()
    page.get_by_label("Customer id").fill(customer_id)
    page.get_by_role("button", name="Show the journey").click()
    page.wait_for_url(re.compile(rf"/console/journey/{customer_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Customer journey: {customer_id}")

    change = page.locator("article.change")
    expect(change).to_have_count(1)
    expect(change.get_by_role("heading", level=3)).to_contain_text("Version 2 · committed")
    expect(change.locator("dd.published")).to_contain_text("after the commit")

    # Both CSS attempts, in order: refused with 503, then applied.
    css = change.locator('tbody[data-system="CSS"]')
    expect(css.locator("tr.leg")).to_contain_text("success")
    attempts = css.locator("tr.attempt")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_be_visible()
    expect(attempts.nth(0)).to_have_attribute("data-outcome", "retryable")
    expect(attempts.nth(0)).to_contain_text("503")
    expect(attempts.nth(1)).to_be_visible()
    expect(attempts.nth(1)).to_have_attribute("data-outcome", "applied")
    expect(attempts.nth(1)).to_contain_text("200")
    for other in ("CRM", "CMS"):
        expect(change.locator(f'tbody[data-system="{other}"] tr.attempt')).to_have_count(1)

    # The trace link opens the trace UI at this change's trace.
    trace_link = change.get_by_role("link", name=f"Open trace {trace_id}")
    expect(trace_link).to_be_visible()
    expect(trace_link).to_have_attribute("href", TRACE_UI.replace("{trace_id}", trace_id))

    # A chart per system: at least this change's delivery in the last hour.
    for code in ("CRM", "CMS", "CSS"):
        figure = page.locator(f'figure.chart-card[data-system="{code}"]')
        expect(figure.locator("svg.chart")).to_be_visible()
        assert figure.locator("rect.bar").count() >= 1
    css_chart = page.get_by_role("img", name=re.compile("^CSS: deliveries and p95 delivery latency"))
    expect(css_chart).to_be_visible()
    shots("journey")
    css.scroll_into_view_if_needed()
    shots("journey-css-attempts")

"""A customer's journey: the connector's journey and delivery-statistics API over HTTP, and the console's
journey page against the real pipeline (profile app on a socket, the outbox relay, the sync-connector
and the stub systems in this process; PostgreSQL and Kafka real). CSS refuses the change once (503)
and applies it on the retry: both attempts, the commit and publish times and the trace link show."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from libs.kit.kafka import KafkaSettings
from libs.kit.tokens import Role
from services.sync_connector.runtime import ConnectorRuntime
from tests.auth_support import bearer
from tests.connector_support import (
    ConnectorHarness,
    all_systems,
    name_changed,
    running_connector,
)
from tests.console_support import console_client, create_customer, rename, served_console_client
from tests.relay_support import relay_settings, running_relay, wait_until

TRACES = "http://traces.example/trace/{trace_id}"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CSS_FAILS_ONCE = {"system": "CSS", "mode": "status", "status": 503, "count": 1}
VIEWER = bearer(Role.VIEWER, subject="vera")


@pytest.fixture
async def connector(harness: ConnectorHarness) -> AsyncIterator[ConnectorRuntime]:
    async with running_connector(harness.settings()) as runtime:
        yield runtime


async def _all_applied(harness: ConnectorHarness, event_id: str, what: str) -> None:
    await wait_until(harness.statuses_become(event_id, all_systems("success")), timeout=20, message=what)


async def _get(harness: ConnectorHarness, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with harness.http.get(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def test_journey_and_delivery_stats_over_http(harness: ConnectorHarness, connector: ConnectorRuntime) -> None:
    api_url = connector.http_url
    await harness.inject_fault({**CSS_FAILS_ONCE, "customerId": "C-JOURNEY-1"})
    first = await harness.produce(name_changed("C-JOURNEY-1", 2), traceparent=TRACEPARENT)
    await _all_applied(harness, first, "every system applied version 2")
    second = await harness.produce(name_changed("C-JOURNEY-1", 3, new_name="王五"))
    await _all_applied(harness, second, "every system applied version 3")

    status, journey = await _get(harness, f"{api_url}/v1/sync-journeys/C-JOURNEY-1", headers=VIEWER)
    assert status == 200
    assert journey["customerId"] == "C-JOURNEY-1"
    assert [e["eventId"] for e in journey["events"]] == [second, first]  # newest first
    newest, oldest = journey["events"]
    assert (newest["profileVersion"], newest["traceparent"]) == (3, None)
    assert (oldest["profileVersion"], oldest["traceparent"]) == (2, TRACEPARENT)
    assert datetime.fromisoformat(oldest["changedAt"]).tzinfo is not None
    records = {r["systemCode"]: r for r in oldest["records"]}
    assert sorted(records) == ["CMS", "CRM", "CSS"]
    css = records["CSS"]
    assert (css["syncStatus"], css["attemptCount"]) == ("success", 2)
    assert [(a["attemptNo"], a["outcome"], a["httpStatus"]) for a in css["attempts"]] == [
        (1, "retryable", 503),
        (2, "applied", 200),
    ]
    assert css["attempts"][0]["attemptedAt"] < css["attempts"][1]["attemptedAt"] <= css["completedAt"]
    assert [(a["outcome"], a["httpStatus"]) for a in records["CRM"]["attempts"]] == [("applied", 200)]

    status, limited = await _get(harness, f"{api_url}/v1/sync-journeys/C-JOURNEY-1?limit=1", headers=VIEWER)
    assert (status, [e["eventId"] for e in limited["events"]]) == (200, [second])
    status, problem = await _get(harness, f"{api_url}/v1/sync-journeys/NOBODY", headers=VIEWER)
    assert (status, problem["code"]) == (404, "SYNC_JOURNEY_NOT_FOUND")
    status, problem = await _get(harness, f"{api_url}/v1/sync-journeys/C-JOURNEY-1?limit=0", headers=VIEWER)
    assert (status, problem["code"]) == (422, "VALIDATION")
    async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{api_url}/v1/sync-journeys/C-JOURNEY-1") as answer:
        assert answer.status == 401

    status, stats = await _get(harness, f"{api_url}/v1/delivery-stats", headers=VIEWER)
    assert status == 200
    assert stats["bucketS"] == 120
    window = datetime.fromisoformat(stats["windowEnd"]) - datetime.fromisoformat(stats["windowStart"])
    assert window.total_seconds() == 3600
    assert [s["systemCode"] for s in stats["systems"]] == ["CRM", "CMS", "CSS"]
    latencies = await harness.db.fetch(
        "SELECT system_code, extract(epoch FROM completed_at - CAST(sync_data ->> 'changedAt' AS timestamptz)) AS s "
        "FROM sync.external_sync_records WHERE sync_status = 'success'"
    )
    for system in stats["systems"]:
        assert len(system["buckets"]) == 30
        assert system["deliveries"] == 2
        assert sum(b["deliveries"] for b in system["buckets"]) == 2
        expected = max(float(r["s"]) for r in latencies if r["system_code"] == system["systemCode"])
        assert system["latencyMaxS"] == pytest.approx(expected, abs=0.002)
        assert 0 <= system["latencyP50S"] <= system["latencyP95S"] <= system["latencyMaxS"]
        empty = [b for b in system["buckets"] if b["deliveries"] == 0]
        assert all(b["latencyP95S"] is None for b in empty)
    status, stats = await _get(harness, f"{api_url}/v1/delivery-stats?windowS=600&buckets=10", headers=VIEWER)
    assert (status, stats["bucketS"], len(stats["systems"][0]["buckets"])) == (200, 60, 10)
    status, problem = await _get(harness, f"{api_url}/v1/delivery-stats?buckets=1000", headers=VIEWER)
    assert (status, problem["code"]) == (422, "VALIDATION")


def _section(html: str, start: str, end: str) -> str:
    assert start in html, html
    return html.split(start, 1)[1].split(end, 1)[0]


async def test_journey_page_shows_commit_publish_every_attempt_and_the_trace_link(
    database_url: str,
    kafka_settings: KafkaSettings,
    topic: str,
    harness: ConnectorHarness,
    connector: ConnectorRuntime,
) -> None:
    customer_id = f"C-J-{uuid.uuid4().hex[:6].upper()}"
    await harness.inject_fault({**CSS_FAILS_ONCE, "customerId": customer_id})
    async with (
        running_relay(database_url, kafka_settings, relay_settings(topic, poll_interval_s=0.2)),
        served_console_client(
            database_url,
            Role.VIEWER,
            subject="vera",
            PROFILE_CONNECTOR_URL=connector.http_url,
            PROFILE_CONSOLE_TRACE_URL_TEMPLATE=TRACES,
        ) as client,
    ):
        await create_customer(client, customer_id)
        await rename(client, customer_id, "李四", 1)
        row = await harness.db.fetchrow(
            "SELECT id, headers ->> 'traceparent' AS traceparent FROM profile.outbox WHERE aggregate_id = $1",
            customer_id,
        )
        event_id = str(row["id"])
        trace_id = row["traceparent"].split("-")[1]
        await _all_applied(harness, event_id, "every system applied it")

        page = await client.get(f"/console/journey/{customer_id}")
        assert page.status_code == 200, page.text
        html = page.text
        assert f"<h1>Customer journey: {customer_id}</h1>" in html
        change = _section(html, f'<article class="change" data-event="{event_id}"', "</article>")
        assert "Version 2 · committed 20" in change
        published = _section(change, '<dd class="published">', "</dd>")
        assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC", published), published
        assert "after the commit" in published
        assert (
            f'<a class="trace-link" href="http://traces.example/trace/{trace_id}" rel="noreferrer" '
            f'target="_blank">Open trace {trace_id}</a>'
        ) in change
        css = _section(change, '<tbody data-system="CSS" data-status="success">', "</tbody>")
        attempts = re.findall(r'<tr class="attempt" data-outcome="(\w+)">.*?</tr>', css, re.DOTALL)
        assert attempts == ["retryable", "applied"]
        assert "<td>503</td>" in css
        assert "<td>200</td>" in css
        assert "after the commit" in css  # delivered, with its delay from the commit
        for system in ("CRM", "CMS"):
            leg = _section(change, f'<tbody data-system="{system}" data-status="success">', "</tbody>")
            assert re.findall(r'data-outcome="(\w+)"', leg) == ["applied"]
        # The viewer sees no outbox link (the outbox pages are an admin's).
        assert f'href="/console/outbox/{event_id}"' not in change

        assert "Bars: deliveries per 2 min; line: their 95th-percentile latency" in html
        charts = _section(html, '<div class="charts">', "</section>")
        for system in ("CRM", "CMS", "CSS"):
            figure = _section(charts, f'<figure class="chart-card" data-system="{system}">', "</figure>")
            assert "1 delivery, latency p50" in figure
            assert f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="chart-{system.lower()}"' in figure
            assert figure.count('<rect class="bar"') == 1
        assert 'aria-current="page">Journey</a>' in html

        lookup = await client.get("/console/journey", params={"customerId": customer_id}, follow_redirects=False)
        assert (lookup.status_code, lookup.headers["location"]) == (303, f"/console/journey/{customer_id}")
        nobody = await client.get("/console/journey/NOBODY")
        assert nobody.status_code == 200
        assert '<p id="no-changes">No change of NOBODY is in the outbox or at the sync-connector.</p>' in nobody.text


async def test_journey_page_without_a_connector_still_shows_the_outbox_side(database_url: str) -> None:
    async with console_client(database_url, Role.ADMIN, subject="ada", PROFILE_CONSOLE_TRACE_URL_TEMPLATE=TRACES) as c:
        await create_customer(c, "C-J-ALONE")
        await rename(c, "C-J-ALONE", "李四", 1)
        conn = await asyncpg.connect(database_url)
        try:
            event_id = str(await conn.fetchval("SELECT id FROM profile.outbox WHERE aggregate_id = 'C-J-ALONE'"))
        finally:
            await conn.close()

        page = await c.get("/console/journey/C-J-ALONE")
        assert page.status_code == 200
        html = page.text
        assert html.count('role="alert"') == 2  # the changes' systems and the charts: each says why
        assert "The sync-connector at http://127.0.0.1:9 cannot be read" in html
        change = _section(html, f'<article class="change" data-event="{event_id}"', "</article>")
        assert "not yet: pending at the relay" in change  # no relay runs here
        assert 'class="trace-link" href="http://traces.example/trace/' in change
        assert f'<a href="/console/outbox/{event_id}">outbox entry</a>' in change  # an admin's link
        assert change.count("unknown (the sync-connector did not answer)") == 3
        assert '<div class="charts">' not in html

        too_long = await c.get(f"/console/journey/{'X' * 51}")
        assert too_long.status_code == 422

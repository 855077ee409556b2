"""Every metric an alert rule or a dashboard panel queries is exposed by the real processes after a flow.

One approval end to end (profile service -> relay -> Kafka -> connector -> CRM/CMS/CSS, and the
customer's e-mail and SMS), then /metrics of the profile service, the relay and the connector
are scraped as Prometheus would. A name counts as exposed when its family is there (``# TYPE``):
a labelled counter has no sample before its first count, yet the query of it is right.
"""

from __future__ import annotations

import httpx
import pytest

from services.stub_externals.mail import RunningSmtp
from tests.e2e.conftest import SYSTEMS, RunningSystem, eventually, notifications_env
from tests.e2e.test_notifications import _approve_a_name_change
from tests.observability_support import exposed_names, queried_metrics


@pytest.fixture
def extra_env(smtp: RunningSmtp) -> dict[str, str]:
    # Notifications on, as compose and both k8s overlays run them: their metrics are queried too.
    return {
        **notifications_env(smtp),
        "CONNECTOR_STATUS_REFRESH_INTERVAL_S": "0.5",
        "PROFILE_BACKLOG_REFRESH_S": "0.5",
    }


async def test_every_metric_the_rules_and_panels_query_is_exposed_after_an_approval(
    running_system: RunningSystem, http: httpx.AsyncClient, smtp: RunningSmtp
) -> None:
    result = await _approve_a_name_change(http, running_system.profile_url)

    async def delivered() -> bool | None:
        response = await http.get(
            f"{running_system.connector_url}/v1/sync-records", params={"customerId": result["customerId"]}
        )
        done = sum(record["syncStatus"] == "success" for record in response.json()["items"])
        return True if done == len(SYSTEMS) and smtp.store.received() else None

    await eventually(delivered, 60, "three deliveries and the customer's e-mail")

    scraped: dict[str, set[str]] = {}
    for name, url in (
        ("profile-service", running_system.profile_url),
        ("outbox-relay", running_system.relay_url),
        ("sync-connector", running_system.connector_url),
    ):
        response = await http.get(f"{url}/metrics")
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"].startswith("text/plain"), name
        scraped[name] = exposed_names(response.text)
    exposed = set().union(*scraped.values())

    queried = queried_metrics()
    assert sum(where.startswith("rule ") for where in queried) >= 10, "the alert rules were read"
    missing = {where: sorted(names - exposed) for where, names in queried.items() if names - exposed}
    assert missing == {}, f"queried but exposed by no process: {missing}"
    # Where each family comes from, as the scrape jobs (and the rules' job labels) assume.
    assert "outbox_oldest_pending_age_seconds" in scraped["outbox-relay"]
    assert "outbox_relay_broker_healthy" in scraped["outbox-relay"]
    assert "name_change_update_failed_total" in scraped["profile-service"]
    assert {"sync_oldest_undelivered_age_seconds", "consumer_lag", "notification_status_total"} <= scraped[
        "sync-connector"
    ]

"""The admin API's contract (contracts/connector_admin.py) names what the connector knows, no more, no less."""

from __future__ import annotations

from typing import get_args

from contracts.connector_admin import Channel, ResendableStatus, SystemCode
from services.sync_connector.admin import SYNC_KIND
from services.sync_connector.notify.admin import NOTIFICATION_KIND


def test_the_bulk_requests_name_the_connectors_targets_and_redrivable_statuses() -> None:
    assert set(get_args(SystemCode)) == set(SYNC_KIND.targets)
    assert set(get_args(Channel)) == set(NOTIFICATION_KIND.targets)
    assert set(get_args(ResendableStatus)) == set(NOTIFICATION_KIND.redrivable)
    assert set(SYNC_KIND.redrivable) == {"failed"}  # BulkRetryRequest.status is the literal "failed"

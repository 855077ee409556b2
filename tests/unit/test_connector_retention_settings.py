"""Retention and status-gauge settings of the connector: defaults, environment, refused values."""

from __future__ import annotations

import pytest

from libs.kit.settings import SettingsError
from services.sync_connector.settings import settings_from_env


@pytest.mark.parametrize(
    ("environ", "retention", "status"),
    [
        pytest.param({}, (30.0, 1000), (15.0, 3600.0), id="defaults-thirty-days-in-batches-of-a-thousand"),
        pytest.param(
            {
                "CONNECTOR_RETENTION_DAYS": "90",
                "CONNECTOR_RETENTION_BATCH_SIZE": "500",
                "CONNECTOR_STATUS_REFRESH_INTERVAL_S": "5",
                "CONNECTOR_NEAR_DEADLINE_WINDOW_S": "600",
            },
            (90.0, 500),
            (5.0, 600.0),
            id="from-the-environment",
        ),
    ],
)
def test_retention_and_status_settings(
    environ: dict[str, str], retention: tuple[float, int], status: tuple[float, float]
) -> None:
    settings = settings_from_env(environ)
    assert (settings.retention_days, settings.retention_batch_size) == retention
    assert (settings.status_refresh_interval_s, settings.near_deadline_window_s) == status


@pytest.mark.parametrize(
    "environ",
    [
        {"CONNECTOR_RETENTION_DAYS": "0.5"},  # the admin audit keeps a day at least
        # A notification pruned before a redelivered event counts as stale would be sent again.
        {"CONNECTOR_RETENTION_DAYS": "7"},
        {"CONNECTOR_RETENTION_DAYS": "10", "CONNECTOR_NOTIFY_MAX_EVENT_AGE_S": str(11 * 86400)},
        {"CONNECTOR_RETENTION_BATCH_SIZE": "0"},
        {"CONNECTOR_STATUS_REFRESH_INTERVAL_S": "0"},
        {"CONNECTOR_NEAR_DEADLINE_WINDOW_S": "-1"},
    ],
)
def test_refused(environ: dict[str, str]) -> None:
    with pytest.raises((SettingsError, ValueError)):
        settings_from_env(environ)

"""Each HTTP client's pool and timeouts: defaults, per-client overrides from the environment, validation."""

from __future__ import annotations

import pytest

from libs.kit.settings import SettingsError
from services.sync_connector.http_clients import HttpClientSettings
from services.sync_connector.settings import settings_from_env


def test_every_client_has_its_own_settings_with_defaults() -> None:
    settings = settings_from_env({})
    for code in ("CRM", "CMS", "CSS"):
        assert settings.http_client(code) == HttpClientSettings(pool_size=32, connect_timeout_s=1.0, read_timeout_s=5.0)
    # The notifications' clients read as long as a notification may take.
    assert settings.http_client("SMS").read_timeout_s == settings.notify.timeout_s
    assert settings.http_client("PROFILE").read_timeout_s == settings.notify.timeout_s


def test_a_client_overrides_what_it_sets_and_keeps_the_rest() -> None:
    settings = settings_from_env(
        {
            "CONNECTOR_HTTP_POOL_SIZE": "16",
            "CONNECTOR_HTTP_TIMEOUT_S": "4",
            "CONNECTOR_HTTP_CLIENTS": '{"CRM": {"pool_size": 4, "read_timeout_s": 10}, "SMS": {"pool_size": 2}}',
        }
    )
    assert settings.http_client("CRM") == HttpClientSettings(pool_size=4, connect_timeout_s=1.0, read_timeout_s=10.0)
    assert settings.http_client("CMS") == HttpClientSettings(pool_size=16, connect_timeout_s=1.0, read_timeout_s=4.0)
    assert settings.http_client("SMS").pool_size == 2
    assert settings.http_client("CRM").call_timeout_s == 11.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CONNECTOR_HTTP_CLIENTS": '{"ERP": {"pool_size": 1}}'}, "unknown clients"),
        ({"CONNECTOR_HTTP_CLIENTS": '{"CRM": {"poolSize": 1}}'}, "unknown field"),
        ({"CONNECTOR_HTTP_CLIENTS": '{"CRM": {"pool_size": 0}}'}, "pool_size must be at least 1"),
        ({"CONNECTOR_HTTP_POOL_SIZE": "0"}, "pool_size must be at least 1"),
        ({"CONNECTOR_HTTP_CONNECT_TIMEOUT_S": "0"}, "timeouts positive"),
        # A claim must outlive the call it covers: connect + read.
        ({"CONNECTOR_CLAIM_LEASE_S": "5", "CONNECTOR_HTTP_TIMEOUT_S": "4.5"}, "claim_lease_s must be longer"),
        ({"CONNECTOR_HTTP_CLIENTS": '{"CSS": {"read_timeout_s": 30}}'}, "claim_lease_s must be longer"),
        ({"CONNECTOR_HTTP_CLIENTS": '{"SMS": {"read_timeout_s": 20}}'}, "notify claim_lease_s"),
        ({"CONNECTOR_UNPROCESSABLE_AFTER_FAILURES": "0"}, "unprocessable_after_failures"),
    ],
)
def test_bad_client_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_env(environ)

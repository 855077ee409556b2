"""Settings come from the environment at start-up, converted to their types."""

from __future__ import annotations

import pytest

from libs.kit.settings import SettingsError
from services.profile.settings import settings_from_env


def test_defaults_without_environment() -> None:
    settings = settings_from_env({})
    assert settings.http.port == 8000
    assert settings.relay.topic == "customer-profile.v1"
    assert settings.kafka.enable_idempotence is True


def test_values_are_converted() -> None:
    settings = settings_from_env(
        {
            "PROFILE_HTTP_PORT": "9000",
            "PROFILE_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "PROFILE_RELAY_POLL_INTERVAL_S": "0.25",
        }
    )
    assert settings.http.port == 9000
    assert settings.kafka.enable_idempotence is False
    assert settings.relay.poll_interval_s == 0.25


def test_bad_value_is_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="PROFILE_HTTP_"):
        settings_from_env({"PROFILE_HTTP_PORT": "eighty"})
